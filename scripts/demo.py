"""`make demo`: the whole pipeline in the foreground, each process's output prefixed with its name.

The cluster: KAFKA_BOOTSTRAP_SERVERS if set, else REDPANDA_BROKERS from the
environment or .env (your own Redpanda or Kafka), else the local cluster,
which the demo starts (through scripts/with-local-kafka) and stops again.
It runs the Slack stand-in (only when SLACK_WEBHOOK_URL is not set, in the
environment or .env), the alerter with the original compose file's threshold
(150 °C), and the publisher. The services log as they always do, except that
the publisher's `Published HIGH TEMP` lines (one per reading above 80 °C) are
folded into one summary line every SUMMARY_EVERY seconds: readings published,
how many ran above 80 °C, the hottest GPU, alerts sent. Ctrl-C (or SIGTERM, or the end of --duration)
stops the publisher first, then the alerter (which delivers what it still
holds and says goodbye on Slack), then the stand-in: each gets SIGTERM and
a bounded wait, then SIGKILL.

The demo's defaults (DEFAULTS; each overridable by the environment or .env,
as for the services): five GPUs every second, spikes on 2 % of readings and
TEMPERATURE_THRESHOLD=150 with ALERT_COOLDOWN=1m (so spikes alert within a
minute), and the early warnings on, with gpu-0000's fan failing from the start
so that it gets a forecast, a warning, a critical alert and a resolved notice
within about 4.5 minutes (tests/unit/test_demo_timeline.py checks that).
"""

from __future__ import annotations

import argparse
import json
import os
import re
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
from prometheus_client.parser import text_string_to_metric_families

from shared.config import load_environment
from shared.kafka import admin_client, ensure_topic, wait_for_cluster

REPO = Path(__file__).resolve().parent.parent

DEFAULTS = {
    "NUM_DEVICES": "5",
    "INTERVAL_MS": "1000",
    "ABNORMAL_PROBABILITY": "0.02",
    "TEMPERATURE_THRESHOLD": "150",
    "ALERT_COOLDOWN": "1m",
    # Early warning: gpu-0000's fan fails from the first tick (25 °C/min for 3m42s, then it recovers; again every
    # 8m42s), which makes a forecast at about 3 minutes (when the 5-minute window holds enough), a warning above
    # 145 °C, a critical alert above 150 °C and a resolved notice 20 s after it is back below 140 °C, within
    # about 4.5 minutes; the other GPUs' spikes alert (and resolve) now and then as in the original.
    "FAILING_FANS": "gpu-0000",
    "WARNING_THRESHOLD": "145",
    "FORECAST_HORIZON": "5m",
    "FORECAST_WINDOW": "5m",
    "RESOLVE_AFTER": "20s",
    "SILENCE_AFTER": "30s",
    "THRESHOLDS_FROM_GPU": "true",
}
STOP_TIMEOUT = 20.0
SUMMARY_EVERY = 10.0  # seconds between the demo's one-line summaries of readings
_PORT_LINE = re.compile(r"serving /metrics.* on port (\d+)")
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
    hide: str | None = None  # lines containing this are not relayed (the summary covers them)
    metrics_port: int | None = field(default=None, init=False)  # once the service said where it serves
    reader: threading.Thread = field(init=False)

    def __post_init__(self) -> None:
        self.reader = threading.Thread(target=self._relay, name=f"relay-{self.name}", daemon=True)
        self.reader.start()

    def _relay(self) -> None:
        stream: IO[str] | None = self.process.stdout
        if stream is None:
            return
        for line in stream:
            if self.metrics_port is None and (match := _PORT_LINE.search(line)):
                self.metrics_port = int(match[1])
            if self.hide is None or self.hide not in line:
                say(self.name, line.rstrip("\n"))

    def samples(self) -> list[tuple[str, dict[str, str], float]]:
        """The service's current /metrics samples ([] while it is not serving yet or does not answer)."""
        if self.metrics_port is None:
            return []
        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                text = response.read().decode()
            return [(s.name, s.labels, s.value) for f in text_string_to_metric_families(text) for s in f.samples]
        except (OSError, ValueError):
            return []


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


def total(samples: list[tuple[str, dict[str, str], float]], name: str) -> float:
    return sum(value for sample, _labels, value in samples if sample == name)


@dataclass
class ReadingsSummary:
    """The demo's periodic line: what the publisher's HIGH TEMP lines would have said, and the alerts sent."""

    delivered: float = 0.0
    high: float = 0.0
    alerts: float = 0.0

    def line(self, publisher: Child, alerter: Child) -> str | None:
        readings, sent = publisher.samples(), alerter.samples()
        if not readings:
            return None
        delivered, high = total(readings, "gpu_publisher_readings_delivered_total"), total(
            readings, "gpu_publisher_high_temperature_readings_total"
        )
        alerts = total(sent, "gpu_alerter_alerts_sent_total") if sent else self.alerts
        temperatures = [(v, labels.get("device", "?")) for n, labels, v in readings if n == "gpu_temperature_celsius"]
        hottest = f"; hottest now {max(temperatures)[1]} at {max(temperatures)[0]:.2f}°C" if temperatures else ""
        text = (
            f"last {SUMMARY_EVERY:g}s: {delivered - self.delivered:.0f} readings delivered,"
            f" {high - self.high:.0f} above 80°C{hottest}; {alerts - self.alerts:.0f} alerts sent"
        )
        self.delivered, self.high, self.alerts = delivered, high, alerts
        return text


def spawn(name: str, args: list[str], env: dict[str, str], hide: str | None = None) -> Child:
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
    return Child(name, process, hide)


def free_or_ephemeral(port: int) -> str:
    """The usual port when it is free (so `curl localhost:8702/metrics` works), else let the OS pick one."""
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
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

    settings = load_environment(REPO / ".env")
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS") or settings.get("REDPANDA_BROKERS", "").strip()
    if not bootstrap:  # no cluster of the user's: run again inside the local one, started and stopped for us
        launcher = REPO / "scripts" / "with-local-kafka"
        args_again = [str(launcher), sys.executable, str(Path(__file__).resolve()), *(argv or sys.argv[1:])]
        os.execv(launcher, args_again)  # noqa: S606 - our own script, fixed arguments
    say("demo", f"using the Kafka cluster at {bootstrap}")
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
        alerter = spawn("alerter", ["-m", "alerter"], {**env, "METRICS_PORT": free_or_ephemeral(8702)})
        children.append(alerter)
        publisher_env = {**env, "METRICS_PORT": free_or_ephemeral(8701)}
        publisher = spawn("publisher", ["-m", "publisher"], publisher_env, hide="Published HIGH TEMP")
        children.append(publisher)
        say(
            "demo",
            f"readings on {topic}: {env['NUM_DEVICES']} GPUs every {env['INTERVAL_MS']} ms, alerts above "
            f"{env['TEMPERATURE_THRESHOLD']}°C{_early(env)}; Ctrl-C stops everything",
        )
        code = watch(children, stop, args.duration, args.until_alerts, stand_in_url)
    finally:
        failed = False
        for child in reversed(children):  # publisher, alerter, stand-in
            failed |= child.stop() != 0
        say("demo", "stopped" if not failed else "stopped (a process exited with an error)")
    return 1 if failed else code


def _early(env: dict[str, str]) -> str:
    """What the start-up line says of the early warnings turned on."""
    parts = []
    if env.get("WARNING_THRESHOLD"):
        parts.append(f"warnings above {env['WARNING_THRESHOLD']}°C")
    if env.get("FORECAST_HORIZON"):
        parts.append(f"forecasts {env['FORECAST_HORIZON']} ahead")
    if env.get("RESOLVE_AFTER"):
        parts.append(f"resolved after {env['RESOLVE_AFTER']}")
    if env.get("SILENCE_AFTER"):
        parts.append(f"silent after {env['SILENCE_AFTER']}")
    if env.get("FAILING_FANS"):
        parts.append(f"the fan of {env['FAILING_FANS']} fails")
    return f", {', '.join(parts)}" if parts else ""


def watch(
    children: list[Child], stop: threading.Event, duration: float | None, until: int | None, stand_in: str | None
) -> int:
    """Wait for Ctrl-C, the duration, enough alerts, or a child that died; 0 unless a child died."""
    deadline = None if duration is None else time.monotonic() + duration
    summary, next_summary = ReadingsSummary(), time.monotonic() + SUMMARY_EVERY
    alerter, publisher = children[-2], children[-1]
    while not stop.wait(0.5):
        if time.monotonic() >= next_summary:
            next_summary += SUMMARY_EVERY
            line = summary.line(publisher, alerter)
            if line is not None:
                say("demo", line)
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
