"""Alerter benchmarks: consumption throughput against a bare consume loop, and end-to-end alert latency.

1. Throughput: a fresh topic pre-filled with 1,000,000 readings (none hot) is
   read by the real alerter code path (AlerterService, built by the same
   bootstrap as `python -m alerter`, CONSUMER_OFFSET_RESET=earliest) and by a
   bare confluent-kafka loop that only counts what consume() returns, each with
   a fresh group, alternately, twice. Targets: >= 100,000 readings/s and >= 0.7
   of the bare loop.
2. Latency: readings produced at 1,000/s, 2 % of them hot (ALERT_COOLDOWN=0,
   so each hot one alerts), through `python -m alerter` as a process, to the
   Slack stand-in; latency = arrival at the stand-in - the reading's timestamp,
   taken just before produce(). Target: p99 < 50 ms.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

from confluent_kafka import Consumer, Producer

from alerter.bootstrap import build, prepare_topics
from alerter.metrics import AlerterMetrics
from alerter.settings import load_settings
from bench.table import print_table
from shared.codec import encode
from shared.config import Env
from shared.kafka import admin_client, consumer_config, ensure_topic, producer_config
from shared.models import TemperatureReading
from slack_stand_in import Received, SlackStandIn

READINGS = 1_000_000
PARTITIONS = 3
BATCH = 2000
RUNS = 3  # each consumer reads the topic this many times, alternately; medians are compared
RATE = 1000  # readings/s for the latency run
HOT_SHARE = 0.02
LATENCY_SECONDS = 30
WARM_UP_SECONDS = 3


def main(bootstrap: str) -> None:
    # Latency first: right after a million-record pre-fill the brokers are still replicating and
    # writing it back, and that tail (seen by a bare consumer just as much) would be measured instead.
    latency(bootstrap)
    throughput(bootstrap)


# -- throughput ----------------------------------------------------------------------------------


def _prefill(bootstrap: str, topic: str) -> float:
    ensure_topic(admin_client(bootstrap, "bench-admin"), topic, partitions=PARTITIONS)
    now = datetime.now(UTC)
    values = [
        (
            f"gpu-{i % 500:04d}".encode(),
            encode(
                TemperatureReading(
                    device_id=f"gpu-{i % 500:04d}",
                    temperature=40.0 + (i * 7919 % 4500) / 100,  # 40-85 °C: none hot
                    timestamp=now,
                    gpu_model="NVIDIA H100 80GB HBM3",
                    host_name=f"node-{i % 64:02d}",
                    power_consume=250.0 + i % 100,
                    gpu_util=float(i % 100),
                )
            ),
        )
        for i in range(5000)
    ]
    producer = Producer(producer_config(bootstrap, "bench-alerter-prefill"))
    started = time.perf_counter()
    for i in range(READINGS):
        key, value = values[i % len(values)]
        while True:
            try:
                producer.produce(topic, value, key=key)
                break
            except BufferError:
                producer.poll(0.01)
        if i % 10_000 == 0:
            producer.poll(0)
    if producer.flush(120) != 0:
        raise RuntimeError("pre-fill did not complete")
    return READINGS / (time.perf_counter() - started)


def _bare(bootstrap: str, topic: str) -> float:
    """The floor: consume() in batches and count, nothing else."""
    consumer = Consumer(consumer_config(bootstrap, "bench-bare", f"bench-bare-{uuid.uuid4().hex}", "earliest"))
    consumer.subscribe([topic])
    count, started, first = 0, 0.0, 0
    try:
        while count < READINGS:
            messages = consumer.consume(BATCH, 1.0)
            if messages and not started:
                started, first = time.perf_counter(), len(messages)
            count += len(messages)
        return (count - first) / (time.perf_counter() - started)
    finally:
        consumer.close()


def _alerter(bootstrap: str, topic: str, slack_url: str) -> float:
    """The real service loop: decode, threshold, offsets, metrics; rate from its first to its last batch."""
    unique = uuid.uuid4().hex[:8]
    settings = load_settings(
        Env(
            {
                "REDPANDA_BROKERS": bootstrap,
                "SOURCE_TOPIC": topic,
                "CONSUMER_GROUP": f"bench-alerter-{unique}",
                "CONSUMER_OFFSET_RESET": "earliest",
                "ALERT_TOPIC": f"bench-alerts-{unique}",
                "DLQ_TOPIC": f"bench-dlq-{unique}",
                "SLACK_WEBHOOK_URL": slack_url,
            }
        )
    )
    layout = prepare_topics(settings, admin_client(bootstrap, "bench-admin"))
    service, client = build(settings, AlerterMetrics(), layout, client_id="bench-alerter")
    stop = threading.Event()
    thread = threading.Thread(target=service.run, args=(stop,), name="alerter")
    thread.start()
    try:
        while service.processed == 0:
            time.sleep(0.01)
        started, first = time.perf_counter(), service.processed
        while service.processed < READINGS:
            time.sleep(0.01)  # rarely: this thread must not take the GIL from the one measured
        return (service.processed - first) / (time.perf_counter() - started)
    finally:
        stop.set()
        thread.join(60)
        client.close()


def throughput(bootstrap: str) -> None:
    topic = f"bench-alerter-{uuid.uuid4().hex[:8]}"
    produced = _prefill(bootstrap, topic)
    runs: list[tuple[str, float]] = []
    with SlackStandIn() as slack:
        for _ in range(RUNS):
            runs.append(("bare consume loop", _bare(bootstrap, topic)))
            runs.append(("alerter (AlerterService)", _alerter(bootstrap, topic, slack.webhook_url())))
        received = len(slack.received)
    bare = statistics.median(rate for name, rate in runs if name.startswith("bare"))
    ours = statistics.median(rate for name, rate in runs if name.startswith("alerter"))
    rows: list[list[object]] = [[name, rate, rate / bare] for name, rate in runs]
    rows.append(["alerter, median", ours, ours / bare])
    print_table(
        f"Alerter throughput: {READINGS:,} readings (none hot) on {PARTITIONS} partitions, pre-filled at "
        f"{produced:,.0f}/s; alerts sent: {received} (expected 0)",
        ["consumer", "readings/s", "x bare loop"],
        rows,
    )
    print(
        f"targets: >= 100,000 readings/s: {'met' if ours >= 100_000 else 'NOT MET'}; "
        f">= 0.7 of the bare loop: {'met' if ours >= 0.7 * bare else 'NOT MET'}"
    )


# -- latency -------------------------------------------------------------------------------------


def latency(bootstrap: str) -> None:
    unique = uuid.uuid4().hex[:8]
    topic = f"bench-latency-{unique}"
    ensure_topic(admin_client(bootstrap, "bench-admin"), topic, partitions=PARTITIONS)
    with SlackStandIn() as slack, tempfile.TemporaryDirectory() as scratch, _BareReader(bootstrap, topic) as bare:
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "REDPANDA_BROKERS": bootstrap,
            "SOURCE_TOPIC": topic,
            "CONSUMER_GROUP": f"bench-latency-{unique}",
            "ALERT_TOPIC": f"bench-latency-alerts-{unique}",
            "DLQ_TOPIC": f"bench-latency-dlq-{unique}",
            "TEMPERATURE_THRESHOLD": "150",
            "ALERT_COOLDOWN": "0s",
            "SLACK_WEBHOOK_URL": slack.webhook_url(),
            "METRICS_PORT": "0",
            "LOG_LEVEL": "warning",
        }
        log_path = Path(scratch) / "alerter.log"
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "alerter"], env=env, cwd=scratch, stdout=log, stderr=subprocess.STDOUT
            )
        try:
            _wait_for_notice(slack, process)
            time.sleep(2.0)  # the group join and first assignment, for both consumers
            sent = _paced_readings(bootstrap, topic)
            expected = sum(1 for hot, _, _ in sent if hot)
            slack.wait_for(lambda got: _alerts(got) >= expected, 30)
        finally:
            process.terminate()
            process.wait(30)
        alerted = {
            r.message["attachments"][0]["fields"][0]["value"]: r.at
            for r in slack.received
            if r.message.get("attachments")
        }
        consumed = dict(bare.arrivals)
    warm_until = sent[0][1] + WARM_UP_SECONDS
    rows: list[list[object]] = []
    p99 = {}
    for name, arrivals in (("Kafka only: bare consumer", consumed), ("alerter: Slack stand-in", alerted)):
        samples = sorted((arrivals[d] - t) * 1000 for hot, t, d in sent if hot and d in arrivals and t >= warm_until)
        missing = sum(1 for hot, _, d in sent if hot and d not in arrivals)
        if not samples:
            rows.append([name, 0, "-", "-", "-", "-", missing])
            continue
        p99[name] = _pct(samples, 99)
        rows.append([name, len(samples), _pct(samples, 50), _pct(samples, 90), p99[name], samples[-1], missing])
    print_table(
        f"End-to-end latency of hot readings, produced at {RATE:,} readings/s for {LATENCY_SECONDS}s, "
        f"{HOT_SHARE:.0%} hot (first {WARM_UP_SECONDS}s left out); same readings, same run",
        ["produce ->", "alerts", "p50 ms", "p90 ms", "p99 ms", "max ms", "missing"],
        rows,
    )
    ours = p99.get("alerter: Slack stand-in")
    print(f"target: alerter p99 < 50 ms: {'met' if ours is not None and ours < 50 else 'NOT MET'}")


class _BareReader:
    """A plain consumer of the same topic in this process: the Kafka part of the latency, for comparison."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self._consumer = Consumer(
            consumer_config(bootstrap, "bench-latency-bare", f"bench-latency-bare-{uuid.uuid4().hex}", "latest")
        )
        self._consumer.subscribe([topic])
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bare-reader", daemon=True)
        self.arrivals: dict[str, float] = {}

    def __enter__(self) -> _BareReader:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join(10)
        self._consumer.close()

    def _run(self) -> None:
        consumer = self._consumer
        while not self._stop.is_set():
            for message in consumer.consume(1000, 0) or consumer.consume(1, 0.1):
                key = message.key()
                if message.error() is None and key is not None and key.startswith(b"hot-"):
                    self.arrivals[key.decode()] = time.time()


def _paced_readings(bootstrap: str, topic: str) -> list[tuple[bool, float, str]]:
    """RATE readings/s in 10 ms steps; every hot one has a device id of its own. Returns (hot, time, device)."""
    producer = Producer(producer_config(bootstrap, "bench-latency-producer"))
    sent: list[tuple[bool, float, str]] = []
    per_step = RATE // 100
    hot_every = round(1 / HOT_SHARE)
    started = time.time()
    for step in range(LATENCY_SECONDS * 100):
        target = started + step / 100
        delay = target - time.time()
        if delay > 0:
            time.sleep(delay)
        for k in range(per_step):
            n = step * per_step + k
            hot = n % hot_every == 0
            device = f"hot-{n}" if hot else f"gpu-{n % 200:03d}"
            now = time.time()
            value = encode(
                TemperatureReading(
                    device_id=device,
                    temperature=180.0 if hot else 65.0,
                    timestamp=datetime.fromtimestamp(now, UTC),
                    gpu_model="NVIDIA H100 80GB HBM3",
                    host_name="node-01",
                    power_consume=300.0,
                    gpu_util=90.0,
                )
            )
            producer.produce(topic, value, key=device.encode())
            sent.append((hot, now, device))
        producer.poll(0)
    producer.flush(30)
    return sent


def _wait_for_notice(slack: SlackStandIn, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while not slack.received and time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the alerter exited with {process.returncode}")
        time.sleep(0.1)


def _alerts(received: list[Received]) -> int:
    return sum(1 for r in received if r.message.get("attachments"))


def _pct(samples: list[float], percent: float) -> float:
    index = min(len(samples) - 1, max(0, round(percent / 100 * len(samples)) - 1))
    return samples[index]


if __name__ == "__main__":
    main(os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092"))
