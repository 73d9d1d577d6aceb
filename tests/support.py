"""A private local Kafka cluster for tests that break brokers on purpose.

Fault tests must never disturb the cluster the rest of the suite uses, so
each gets its own state folder and free ports, driven through the same
scripts/local-kafka that users run; faults are injected by pid.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, TypeVar

REPO = Path(__file__).resolve().parent.parent
SCRIPT = REPO / "scripts" / "local-kafka"
NODES = ("controller", "broker-1", "broker-2")

T = TypeVar("T")


def wait_until(
    condition: Callable[[], T | Literal[False] | None], timeout: float, what: str, interval: float = 0.1
) -> T:
    """Poll `condition` until it returns something truthy; fail the test with `what` after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(interval)


def free_port() -> int:
    """A loopback port that was free a moment ago."""
    return free_ports(1)[0]


def free_ports(count: int) -> list[int]:
    """Distinct ports that were free a moment ago (the OS hands out ephemeral ones)."""
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket()
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for sock in sockets:
            sock.close()


@dataclass
class PrivateCluster:
    state: Path
    ports: list[int] = field(default_factory=lambda: free_ports(3))

    @property
    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "LOCAL_KAFKA_STATE": str(self.state),
            "LOCAL_KAFKA_BROKER_PORTS": f"{self.ports[0]},{self.ports[1]}",
            "LOCAL_KAFKA_CONTROLLER_PORT": str(self.ports[2]),
            "LOCAL_KAFKA_HEAP": os.environ.get("LOCAL_KAFKA_HEAP", "256m"),
        }

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.ports[0]},127.0.0.1:{self.ports[1]}"

    def broker_port(self, node: str) -> int:
        return self.ports[NODES.index(node) - 1]

    def _run(self, verb: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(SCRIPT), verb], env=self.env, capture_output=True, text=True, timeout=timeout, check=False
        )

    def up(self) -> str:
        """Start every node that is not running; returns the bootstrap list once both brokers serve."""
        result = self._run("up")
        if result.returncode != 0:
            raise RuntimeError(f"private cluster did not start: {result.stderr.strip()}")
        return result.stdout.strip().splitlines()[-1]

    def wait_fully_replicated(self, timeout: float = 90) -> None:
        """Until every partition (internal ones too) has all its replicas in sync.

        A restarted broker serves metadata before it has caught up; killing
        the other one before then would leave partitions without a leader.
        """
        from shared.kafka import admin_client  # noqa: PLC0415 - keep this module importable without the venv

        admin = admin_client(self.bootstrap, "fault-admin-isr")
        deadline = time.monotonic() + timeout
        lagging: list[str] = []
        while time.monotonic() < deadline:
            topics = admin.list_topics(timeout=10).topics
            lagging = [
                f"{name}/{p.id}"
                for name, topic in topics.items()
                for p in topic.partitions.values()
                if len(p.isrs) < len(p.replicas)
            ]
            if not lagging:
                return
            time.sleep(0.5)
        raise RuntimeError(f"partitions still under-replicated after {timeout}s: {lagging[:5]}")

    def down(self) -> None:
        self._run("down")

    def pid(self, node: str) -> int | None:
        try:
            pid = int((self.state / "pids" / f"{node}.pid").read_text())
        except (OSError, ValueError):
            return None
        return pid if Path(f"/proc/{pid}").exists() else None

    def signal(self, node: str, sig: signal.Signals) -> int:
        pid = self.pid(node)
        if pid is None:
            raise RuntimeError(f"{node} is not running")
        os.kill(pid, sig)
        return pid

    def kill(self, node: str) -> None:
        """SIGKILL, then wait until the process is really gone (so its port can be reused)."""
        pid = self.signal(node, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
            time.sleep(0.05)

    def stop_all(self) -> None:
        """The whole cluster goes away at once (SIGKILL every node), as in a power cut."""
        for node in NODES:
            if self.pid(node) is not None:
                self.kill(node)
