"""`make demo`: the whole pipeline in the foreground, each process's output prefixed with its name.

Runs, against the cluster in KAFKA_BOOTSTRAP_SERVERS (make demo starts the
local one): the Slack stand-in (only when SLACK_WEBHOOK_URL is not set, in the
environment or .env), the alerter with the original compose file's threshold
(150 °C), and the publisher. Ctrl-C (or SIGTERM, or the end of --duration)
stops the publisher first, then the alerter (which delivers what it still
holds and says goodbye on Slack), then the stand-in: each gets SIGTERM and
a bounded wait, then SIGKILL.

The demo's defaults (each overridable by the environment or .env, as for the
services): NUM_DEVICES=5, INTERVAL_MS=1000, ABNORMAL_PROBABILITY=0.5 (so an
alert is due within seconds rather than minutes), TEMPERATURE_THRESHOLD=150,
ALERT_COOLDOWN=1m.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from confluent_kafka import KafkaException

from shared.config import load_environment
from shared.kafka import admin_client, ensure_topic, wait_for_cluster

REPO = Path(__file__).resolve().parent.parent

DEFAULTS = {
    "NUM_DEVICES": "5",
    "INTERVAL_MS": "1000",
    "ABNORMAL_PROBABILITY": "0.5",
    "TEMPERATURE_THRESHOLD": "150",
    "ALERT_COOLDOWN": "1m",
}
STOP_TIMEOUT = 20.0
COLOURS = {"slack": "35", "alerter": "33", "publisher": "36", "demo": "1"}
_print_lock = threading.Lock()


def say(name: str, line: str) -> None:
    prefix = f"[{name}]".ljust(12)
    if sys.stdout.isatty():
        prefix = f"\033[{COLOURS.get(name, '0')}m{prefix}\033[0m"
    with _print_lock:
        sys.stdout.write(f"{prefix}{line}\n")
        sys.stdout.flush()


@dataclass
class Child:
    name: str
    process: subprocess.Popen[str]
    reader: threading.Thread = field(init=False)

    def __post_init__(self) -> None:
        self.reader = threading.Thread(target=self._relay, name=f"relay-{self.name}", daemon=True)
        self.reader.start()

    def _relay(self) -> None:
        stream: IO[str] | None = self.process.stdout
        if stream is None:
            return
        for line in stream:
            say(self.name, line.rstrip("\n"))

    def stop(self) -> int:
        """SIGTERM, a bounded wait, then SIGKILL; returns the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            code = self.process.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            say("demo", f"{self.name} did not stop within {STOP_TIMEOUT:.0f}s; killing it")
            self.process.kill()
            code = self.process.wait()
        self.reader.join(5)
        say("demo", f"{self.name} (pid {self.process.pid}) exited with {code}")
        return code


def spawn(name: str, args: list[str], env: dict[str, str]) -> Child:
    """A child in its own session: Ctrl-C reaches only the demo, which then stops children in order."""
    process = subprocess.Popen(
        [sys.executable, *args],
        cwd=REPO,
        env={**env, "PYTHONUNBUFFERED": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        bufsize=1,
        start_new_session=True,
    )
    say("demo", f"started {name} (pid {process.pid})")
    return Child(name, process)


def free_or_ephemeral(port: int) -> str:
    """The usual port when it is free (so `curl localhost:8702/metrics` works), else let the OS pick one."""
    with socket.socket() as sock:
        try:
            sock.bind(("0.0.0.0", port))  # noqa: S104 - the services bind 0.0.0.0 too
        except OSError:
            return "0"
    return str(port)


def start_stand_in(env: dict[str, str]) -> tuple[Child, str]:
    process = subprocess.Popen(
        [sys.executable, "-m", "slack_stand_in", "--port", "0"],
        cwd=REPO,
        env={**env, "PYTHONUNBUFFERED": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        bufsize=1,
        start_new_session=True,
    )
    first = process.stdout.readline().strip() if process.stdout is not None else ""
    if not first.startswith("listening on "):
        process.kill()
        raise SystemExit(f"demo: the Slack stand-in did not start: {first or process.wait()}")
    url = first.removeprefix("listening on ")
    say("demo", f"started the Slack stand-in (pid {process.pid}) at {url}; alerts will be printed below")
    return Child("slack", process), url


def alerts_received(url: str) -> int:
    try:
        with urllib.request.urlopen(url + "_received", timeout=2) as response:  # noqa: S310 - loopback stand-in
            messages = json.load(response)["messages"]
    except (OSError, ValueError, KeyError):
        return 0
    return sum(1 for m in messages if m["message"].get("attachments"))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run the whole pipeline in the foreground; Ctrl-C stops it.")
    parser.add_argument("--duration", type=float, help="stop after this many seconds (default: run until Ctrl-C)")
    parser.add_argument("--until-alerts", type=int, help="stop once this many alerts reached the Slack stand-in")
    parser.add_argument("--topic", default=None, help="readings topic (default: REDPANDA_TOPIC or gpu-temperature)")
    args = parser.parse_args(argv)

    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if not bootstrap:
        sys.stderr.write("demo: KAFKA_BOOTSTRAP_SERVERS is not set (run it through `make demo`)\n")
        return 2
    settings = load_environment(REPO / ".env")
    env = {**DEFAULTS, **settings, "REDPANDA_BROKERS": bootstrap}
    topic = args.topic or env.get("REDPANDA_TOPIC") or env.get("SOURCE_TOPIC") or "gpu-temperature"
    env.update({"REDPANDA_TOPIC": topic, "SOURCE_TOPIC": topic})

    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())

    admin = admin_client(bootstrap, "demo-admin")
    try:
        wait_for_cluster(admin, attempts=5, describe=f"Kafka cluster at {bootstrap}")
        ensure_topic(admin, topic, partitions=int(env.get("TOPIC_PARTITIONS", "6")))
    except (ConnectionError, KafkaException, ValueError) as exc:
        sys.stderr.write(f"demo: cannot prepare the readings topic {topic}: {exc}\n")
        return 1

    children: list[Child] = []
    stand_in_url = None
    code = 1
    try:
        if not settings.get("SLACK_WEBHOOK_URL", "").strip():
            stand_in, stand_in_url = start_stand_in(env)
            children.append(stand_in)
            env["SLACK_WEBHOOK_URL"] = stand_in_url + "services/demo"
        else:
            say("demo", "SLACK_WEBHOOK_URL is set: alerts go to your Slack")
        children.append(spawn("alerter", ["-m", "alerter"], {**env, "METRICS_PORT": free_or_ephemeral(8702)}))
        children.append(spawn("publisher", ["-m", "publisher"], {**env, "METRICS_PORT": free_or_ephemeral(8701)}))
        say(
            "demo",
            f"readings on {topic}: {env['NUM_DEVICES']} GPUs every {env['INTERVAL_MS']} ms, alerts above "
            f"{env['TEMPERATURE_THRESHOLD']}°C; Ctrl-C stops everything",
        )
        code = watch(children, stop, args.duration, args.until_alerts, stand_in_url)
    finally:
        failed = False
        for child in reversed(children):  # publisher, alerter, stand-in
            failed |= child.stop() != 0
        say("demo", "stopped" if not failed else "stopped (a process exited with an error)")
    return 1 if failed else code


def watch(
    children: list[Child], stop: threading.Event, duration: float | None, until: int | None, stand_in: str | None
) -> int:
    """Wait for Ctrl-C, the duration, enough alerts, or a child that died; 0 unless a child died."""
    deadline = None if duration is None else time.monotonic() + duration
    while not stop.wait(0.5):
        for child in children:
            if child.process.poll() is not None:
                say("demo", f"{child.name} exited unexpectedly with {child.process.returncode}; stopping")
                return 1
        if deadline is not None and time.monotonic() >= deadline:
            say("demo", f"{duration:g}s are up; stopping")
            break
        if until is not None and stand_in is not None and alerts_received(stand_in) >= until:
            say("demo", f"{until} alert(s) reached the Slack stand-in; stopping")
            break
    return 0


if __name__ == "__main__":
    sys.exit(main())
