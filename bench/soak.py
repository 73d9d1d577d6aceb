"""`make soak`: the whole pipeline under steady load for a bounded time, with a flaky Slack.

Publisher at 10,000 readings/s (1,000 devices every 100 ms), alerter with
about 1 % hot readings, and the Slack stand-in answering 429 (Retry-After 1 s)
to 10 % of requests. Afterwards the readings topic is replayed through the
pure alert policy to know which alerts were due, and compared with what the
stand-in accepted. Prints lag over time and both services' memory at the end
of warm-up and at the end (growth must stay under 10 %).

    SOAK_MINUTES=10 make soak        (or: python -m bench.soak --minutes 2)
"""

from __future__ import annotations

import argparse
import math
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from confluent_kafka import OFFSET_BEGINNING, Consumer, Message, TopicPartition

from alerter.domain.policy import AlertPolicy, DeviceState, event_time
from bench.table import print_table
from shared.codec import DecodeError, decode_reading
from shared.kafka import consumer_config
from slack_stand_in import Behaviour, SlackStandIn

DEVICES = 1_000
INTERVAL_MS = 100
THRESHOLD = 100.0  # with ABNORMAL_PROBABILITY 0.02, about 1 % of readings are above it
COOLDOWN = 300.0
MAX_CLOCK_SKEW = 60.0
PARTITIONS = 6
SAMPLE_EVERY = 10.0

# The progress rows printed while the soak runs, and the table at the end: one header for both.
PROGRESS_COLUMNS = ["s", "delivered", "consumed", "lag", "alerts sent", "publisher MiB", "alerter MiB"]
PROGRESS_WIDTH = 13


@dataclass
class Service:
    name: str
    process: subprocess.Popen[bytes]
    log: Path

    def rss_mib(self) -> float:
        try:
            for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
        except OSError:
            pass
        return float("nan")

    def stop(self, timeout: float = 60) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait(10)


def start(name: str, module: str, env: dict[str, str], folder: Path) -> Service:
    log = folder / f"{name}.log"
    with log.open("wb") as out:  # the child keeps its own descriptor
        process = subprocess.Popen(
            [sys.executable, "-m", module],
            env={**os.environ, **env, "PYTHONUNBUFFERED": "1"},
            cwd=folder,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    return Service(name, process, log)


def scrape(port_file: Path, name: str) -> float:
    """Sum of all samples of `name` at a service's /metrics (0 when not reachable yet)."""
    match = re.search(r"on port (\d+)", port_file.read_text(errors="replace"))
    if not match:
        return 0.0
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{match[1]}/metrics", timeout=5) as response:
            text = response.read().decode()
    except OSError:
        return 0.0
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name))


def group_lag(bootstrap: str, group: str, topic: str) -> int:
    consumer = Consumer(consumer_config(bootstrap, "soak-lag", group, "earliest"))
    try:
        parts = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        committed = consumer.committed(parts, timeout=10)
        lag = 0
        for tp in committed:
            high = consumer.get_watermark_offsets(TopicPartition(topic, tp.partition), timeout=10)[1]
            lag += high - (tp.offset if tp.offset >= 0 else 0)
        return lag
    finally:
        consumer.close()


def replay(bootstrap: str, topic: str) -> tuple[int, int, int]:
    """(readings, hot readings, alerts due) from the topic through the pure policy, delivery assumed at once."""
    policy = AlertPolicy(THRESHOLD, COOLDOWN, MAX_CLOCK_SKEW)
    states: dict[str, DeviceState] = {}
    readings = hot = due = 0
    for message in read_topic(bootstrap, topic):
        try:
            reading = decode_reading(message.value())
        except DecodeError:
            continue
        readings += 1
        if not policy.is_hot(reading.temperature):
            continue
        hot += 1
        record_ms = message.timestamp()[1]
        at = event_time(reading.timestamp.timestamp(), record_ms / 1000 if record_ms > 0 else None, MAX_CLOCK_SKEW)
        state = states.setdefault(reading.device_id, DeviceState())
        _verdict, dues = policy.judge(state, reading, 0, at, at)  # judged as it happened: live, never late
        for alert in dues:
            due += 1
            policy.delivered(state, alert.kind, alert.at)
    return readings, hot, due


def read_topic(bootstrap: str, topic: str) -> Iterator[Message]:
    consumer = Consumer(consumer_config(bootstrap, "soak-replay", f"soak-replay-{uuid.uuid4().hex}", "earliest"))
    try:
        parts = [TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(PARTITIONS)]
        ends = {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in range(PARTITIONS)}
        consumer.assign(parts)
        remaining = sum(ends.values())
        idle_since = time.monotonic()
        while remaining > 0 and time.monotonic() - idle_since < 30:
            batch = consumer.consume(10_000, 1.0)
            for message in batch:
                if message.error() is None:
                    remaining -= 1
                    idle_since = time.monotonic()
                    yield message
    finally:
        consumer.close()


def closing_count(log: Path, what: str) -> int:
    """A count from the publisher's closing line (`... N readings produced, N delivered, ...`)."""
    found = re.findall(rf"(\d+) {what}\b", log.read_text(errors="replace"))
    return int(found[-1]) if found else -1


def alerts_in(slack: SlackStandIn) -> int:
    """Alert attachments accepted (the start-up and shutdown notices carry no Device ID field)."""
    return sum(
        1
        for received in slack.received
        for attachment in received.message.get("attachments", [])
        if any(f.get("title") == "Device ID" for f in attachment.get("fields", []))
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--minutes", type=float, default=float(os.environ.get("SOAK_MINUTES", "10")))
    args = parser.parse_args(argv)
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if not bootstrap:
        print("soak: KAFKA_BOOTSTRAP_SERVERS is not set (run it through `make soak`)", file=sys.stderr)
        return 2
    duration = args.minutes * 60
    warm_up = min(60.0, duration / 5)
    run = uuid.uuid4().hex[:8]
    topic, group = f"soak-readings-{run}", f"soak-alerter-{run}"
    folder = Path(tempfile.mkdtemp(prefix="soak-"))
    print(f"soak: {args.minutes:g} min, topic {topic}, logs in {folder}", flush=True)

    # The stand-in keeps only its last `keep` messages: room for every alert that can be due (one per device per
    # cooldown, plus one per device for the window in progress) and the two notices.
    keep = DEVICES * (math.ceil(args.minutes * 60 / COOLDOWN) + 2) + 10
    with SlackStandIn(keep=keep) as slack:
        slack.behave(Behaviour("rate_limit", status=429, retry_after=1.0, probability=0.1))
        common = {"REDPANDA_BROKERS": bootstrap, "METRICS_PORT": "0", "LOG_LEVEL": "warning"}
        alerter = start("alerter", "alerter", {
            **common, "LOG_LEVEL": "info", "SOURCE_TOPIC": topic, "CONSUMER_GROUP": group,
            "CONSUMER_OFFSET_RESET": "earliest", "TEMPERATURE_THRESHOLD": str(THRESHOLD),
            "ALERT_COOLDOWN": f"{COOLDOWN:g}s", "MAX_CLOCK_SKEW": f"{MAX_CLOCK_SKEW:g}s",
            "SLACK_WEBHOOK_URL": slack.webhook_url(), "ALERT_TOPIC": f"{topic}-alerts", "DLQ_TOPIC": f"{topic}-dlq",
            "ALERT_BUDGET_PER_MINUTE": "100000",  # every due alert is compared one by one: no summary
        }, folder)
        publisher = start("publisher", "publisher", {
            **common, "LOG_LEVEL": "info", "REDPANDA_TOPIC": topic, "NUM_DEVICES": str(DEVICES),
            "INTERVAL_MS": str(INTERVAL_MS), "ABNORMAL_PROBABILITY": "0.02", "SIMULATOR_SEED": "2026",
            "TOPIC_PARTITIONS": str(PARTITIONS),
        }, folder)
        services = (publisher, alerter)
        started = time.monotonic()
        samples: list[list[object]] = []
        rss_warm: dict[str, float] = {}
        try:
            while (elapsed := time.monotonic() - started) < duration:
                time.sleep(SAMPLE_EVERY)
                elapsed = time.monotonic() - started
                for service in services:
                    if service.process.poll() is not None:
                        code = service.process.returncode
                        raise RuntimeError(f"{service.name} exited early ({code}); see {service.log}")
                if not rss_warm and elapsed >= warm_up:
                    rss_warm = {s.name: s.rss_mib() for s in services}
                samples.append([
                    f"{elapsed:.0f}",
                    int(scrape(publisher.log, "gpu_publisher_readings_delivered_total")),
                    int(scrape(alerter.log, "gpu_alerter_readings_consumed_total")),
                    group_lag(bootstrap, group, topic),
                    int(scrape(alerter.log, "gpu_alerter_alerts_sent_total")),
                    round(publisher.rss_mib(), 1),
                    round(alerter.rss_mib(), 1),
                ])
                if len(samples) == 1:
                    print("  " + "  ".join(f"{h:>{PROGRESS_WIDTH}}" for h in PROGRESS_COLUMNS), flush=True)
                print("  " + "  ".join(f"{c:>{PROGRESS_WIDTH}}" for c in samples[-1]), flush=True)
            rss_end = {s.name: s.rss_mib() for s in services}
            produced = int(scrape(publisher.log, "gpu_publisher_readings_produced_total"))
            publisher_code = publisher.stop()
            delivered = closing_count(publisher.log, "delivered")
            readings, hot, due = replay(bootstrap, topic)
            deadline = time.monotonic() + 120
            while alerts_in(slack) < due and time.monotonic() < deadline:
                time.sleep(1)
            consumed = int(scrape(alerter.log, "gpu_alerter_readings_consumed_total"))
            alerter_code = alerter.stop()
        finally:
            for service in services:
                service.stop(10)
        alerts_received = alerts_in(slack)
        requests, refused = slack.requests, slack.refused

    print_table(f"soak: over time (every {SAMPLE_EVERY:g}s)", PROGRESS_COLUMNS, samples)
    print_table("soak: totals", ["what", "value"], [
        ["minutes", f"{args.minutes:g}"],
        ["readings produced / delivered (publisher)", f"{produced:,} / {delivered:,}"],
        ["readings on the topic", readings],
        ["readings consumed (alerter)", consumed],
        ["hot readings", f"{hot:,} ({hot / max(readings, 1):.2%})"],
        ["alerts due (replayed policy)", due],
        ["alerts received by the stand-in", alerts_received],
        ["webhook requests / answered 429", f"{requests:,} / {refused:,}"],
        ["exit codes publisher / alerter", f"{publisher_code} / {alerter_code}"],
    ])
    print_table("soak: memory (RSS, MiB)", ["service", "after warm-up", "end", "growth"], [
        [name, f"{rss_warm.get(name, float('nan')):.1f}", f"{rss_end[name]:.1f}",
         f"{(rss_end[name] / rss_warm[name] - 1) * 100:+.1f}%" if name in rss_warm else "n/a"]
        for name in rss_end
    ])
    ok = alerts_received == due and publisher_code == 0 and alerter_code == 0 and delivered == readings
    print(f"\nsoak: {'OK' if ok else 'MISMATCH'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
