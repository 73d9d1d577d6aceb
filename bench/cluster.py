"""A fresh local cluster for each `make bench`: a long-used one (hundreds of topics) slows every loop and
widens the tails, so figures from it say more about its history than about the code.

The benchmark cluster has its own state folder and ports (BENCH_BROKER_PORTS, default 9192,9193, controller 9194),
so it never touches the cluster `make test` or `make demo` use; it is reset before the run and stopped after.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SCRIPT = REPO / "scripts" / "local-kafka"
STATE = REPO / ".local-kafka-bench"


def _env() -> dict[str, str]:
    brokers = os.environ.get("BENCH_BROKER_PORTS", "9192,9193")
    controller = os.environ.get("BENCH_CONTROLLER_PORT", "9194")
    return {
        **os.environ,
        "LOCAL_KAFKA_STATE": str(STATE),
        "LOCAL_KAFKA_BROKER_PORTS": brokers,
        "LOCAL_KAFKA_CONTROLLER_PORT": controller,
    }


def _run(verb: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(SCRIPT), verb], env=_env(), capture_output=True, text=True, check=False, timeout=300)


@contextmanager
def fresh_cluster() -> Iterator[str]:
    """Reset, start and yield the bootstrap list of the benchmark cluster; stop it afterwards, whatever happens."""
    _run("reset")
    started = _run("up")
    if started.returncode != 0:
        raise SystemExit(f"bench: the benchmark cluster did not start: {started.stderr.strip()}")
    try:
        yield started.stdout.strip().splitlines()[-1]
    finally:
        _run("down")
