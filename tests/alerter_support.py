"""Helpers for the alerter's tests: sample messages, readings produced straight to Kafka, a running alerter.

Readings go to Kafka with a plain confluent Producer and shared.codec.encode
(never through the publisher), and the alerter runs through its real entry
point (`python -m alerter`) as a subprocess, so kill -9 is a real kill.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import requests
from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition
from prometheus_client.parser import text_string_to_metric_families

from shared.codec import encode
from shared.kafka import consumer_config, kafka_error, producer_config
from shared.models import AlertEvent, TemperatureReading
from tests.support import wait_until

REPO = Path(__file__).resolve().parent.parent
MOMENT = datetime(2006, 1, 2, 15, 4, 5, 250_000, tzinfo=UTC)
WEBHOOK_PATH = "services/T0SECRET/B0SECRET/x0x0x0SECRETx0x0x0"
SENTINEL = "sentinel-"  # device ids of sentinel readings (see send_sentinels); never a real device
T = TypeVar("T")


def make_alert(**changes: object) -> AlertEvent:
    """An AlertEvent with plausible values; keyword arguments replace fields."""
    fields: dict[str, object] = {
        "device_id": "gpu-3",
        "temperature": 201.456,
        "timestamp": MOMENT,
        "gpu_model": "NVIDIA H100 80GB HBM3",
        "host_name": "node-07",
        "power_consume": 412.3456,
        "gpu_util": 97.5,
        "temperature_threshold": 150.0,
    }
    fields.update(changes)
    return AlertEvent(**fields)  # type: ignore[arg-type]


def reading(device: str, temperature: float, at: float, **changes: Any) -> TemperatureReading:
    """A reading of `device` at epoch second `at`."""
    fields: dict[str, Any] = {
        "device_id": device,
        "temperature": temperature,
        "timestamp": datetime.fromtimestamp(at, UTC),
        "gpu_model": "NVIDIA H100 80GB HBM3",
        "host_name": "node-1",
        "power_consume": 300.0,
        "gpu_util": 90.0,
    }
    fields.update(changes)
    return TemperatureReading(**fields)


def produce(
    bootstrap: str,
    topic: str,
    records: Iterable[TemperatureReading | tuple[bytes | None, bytes | None] | tuple[bytes, bytes, list[Any]]],
    *,
    record_times: bool = True,
) -> list[tuple[int, int]]:
    """Readings (keyed by device; Kafka timestamp = reading time unless told otherwise) or raw (key, value[, headers]).

    Returns each record's (partition, offset), in the order given.
    """
    producer = Producer(producer_config(bootstrap, "tests-alerter-producer"))
    placed: dict[int, tuple[int, int]] = {}

    def delivered(index: int) -> Callable[[Any, Message], None]:
        def callback(error: Any, message: Message) -> None:
            assert error is None, error
            placed[index] = (message.partition() or 0, message.offset() or 0)

        return callback

    count = 0
    for count, record in enumerate(records, start=1):
        if isinstance(record, TemperatureReading):
            stamp = round(record.timestamp.timestamp() * 1000) if record_times else 0  # 0: the producer's clock
            producer.produce(
                topic,
                encode(record),
                key=record.device_id.encode(),
                timestamp=stamp,
                on_delivery=delivered(count - 1),
            )
        else:
            headers = record[2] if len(record) == 3 else None
            producer.produce(topic, record[1], key=record[0], headers=headers, on_delivery=delivered(count - 1))
        producer.poll(0)
    assert producer.flush(30) == 0, "every test record was acknowledged"
    return [placed[i] for i in range(count)]


def send_sentinels(bootstrap: str, topic: str, at: float | None = None) -> set[str]:
    """One hot reading of a fresh device on every partition of `topic` (at event time `at`, default now); returns
    those devices.

    It replaces "wait a moment, a repeat would arrive now": an alerter reads each partition in order
    and posts alerts one at a time in the order it raised them, so once every sentinel's alert has arrived,
    nothing raised from an earlier record of any partition (a repeat included) can still be on its way.
    """
    producer = Producer(producer_config(bootstrap, "tests-sentinels"))
    partitions = producer.list_topics(topic, timeout=10).topics[topic].partitions
    tag = uuid.uuid4().hex[:6]
    devices = set()
    for partition in partitions:
        device = f"{SENTINEL}{tag}-{partition}"
        devices.add(device)
        when = time.time() if at is None else at
        value = encode(reading(device, 999.0, when))
        producer.produce(topic, value, key=device.encode(), partition=partition, timestamp=round(when * 1000))
    assert producer.flush(30) == 0, "every sentinel was acknowledged"
    return devices


def wait_for_sentinels(slack: Any, devices: set[str], timeout: float = 60.0) -> None:
    """Until the stand-in has an alert for every sentinel device (see send_sentinels)."""
    slack.wait_for(lambda got: devices <= set(alerts_by_device(got, sentinels=True)), timeout)


def read_all(bootstrap: str, topic: str, expected: int, timeout: float = 30.0) -> list[Message]:
    """At least `expected` records of `topic` from the beginning (bounded in time), in partition/offset order."""
    consumer = Consumer(consumer_config(bootstrap, "tests-reader", f"tests-reader-{time.monotonic_ns()}", "earliest"))
    consumer.subscribe([topic])
    messages: list[Message] = []
    deadline = time.monotonic() + timeout
    try:
        while len(messages) < expected and time.monotonic() < deadline:
            messages += [m for m in consumer.consume(500, 0.5) if m.error() is None]
        end = time.monotonic() + 1.0  # anything beyond what we expected would show up now
        while time.monotonic() < end:
            messages += [m for m in consumer.consume(500, 0.2) if m.error() is None]
    finally:
        consumer.close()
    return sorted(messages, key=lambda m: (m.partition() or 0, m.offset() or 0))


_COORDINATOR_MOVING = (
    KafkaError.NOT_COORDINATOR,
    KafkaError.COORDINATOR_LOAD_IN_PROGRESS,
    KafkaError.COORDINATOR_NOT_AVAILABLE,
    KafkaError._TIMED_OUT,
)


def committed(bootstrap: str, group: str, topic: str, partitions: int, timeout: float = 30) -> list[int]:
    """The group's committed offsets; asked again while the group's coordinator moves or loads (a retriable
    error, e.g. NOT_COORDINATOR just after the group's last member left)."""
    consumer = Consumer(consumer_config(bootstrap, "tests-committed", group, "earliest"))
    deadline = time.monotonic() + timeout
    try:
        while True:
            try:
                found = consumer.committed([TopicPartition(topic, p) for p in range(partitions)], timeout=10)
            except KafkaException as exc:
                error = kafka_error(exc)
                transient = error is not None and (error.retriable() or error.code() in _COORDINATOR_MOVING)
                if not transient or time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
            else:
                return [tp.offset for tp in found]
    finally:
        consumer.close()


def end_offsets(bootstrap: str, topic: str, partitions: int) -> list[int]:
    consumer = Consumer(consumer_config(bootstrap, "tests-offsets", "tests-offsets", "earliest"))
    try:
        return [consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in range(partitions)]
    finally:
        consumer.close()




def alert_env(bootstrap: str, unique: str, slack_url: str, **overrides: str) -> dict[str, str]:
    """Environment for one alerter in a test: fresh topics and group, fast retries, ephemeral metrics port."""
    env = {
        "REDPANDA_BROKERS": bootstrap,
        "SOURCE_TOPIC": f"readings-{unique}",
        "CONSUMER_GROUP": f"alerter-{unique}",
        "CONSUMER_OFFSET_RESET": "earliest",
        "CONSUMER_SESSION_TIMEOUT": "6s",  # the broker's minimum: a killed alerter's partitions move on quickly
        "ALERT_TOPIC": f"alerts-{unique}",
        "DLQ_TOPIC": f"dlq-{unique}",
        "TEMPERATURE_THRESHOLD": "150",
        "ALERT_COOLDOWN": "5m",
        "SLACK_WEBHOOK_URL": slack_url,
        "SLACK_CHANNEL": "#tests",
        "SLACK_TIMEOUT": "2s",
        "SLACK_BACKOFF_MAX": "300ms",
        "METRICS_PORT": "0",
        "COMMIT_INTERVAL": "200ms",
        "SHUTDOWN_TIMEOUT": "3s",
        "STARTUP_ATTEMPTS": "5",
        "STARTUP_BACKOFF_MAX": "1s",
    }
    env.update(overrides)
    return env


@dataclass
class AlerterProcess:
    """`python -m alerter` with the given environment; stderr (its log) goes to a file we can read at any time."""

    env: dict[str, str]
    log_path: Path
    process: subprocess.Popen[bytes] = field(init=False)

    def __post_init__(self) -> None:
        base = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR")}
        self._log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "alerter"],
            env={**base, **self.env, "PYTHONUNBUFFERED": "1"},
            cwd=self.log_path.parent,  # no stray .env
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    @property
    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    @property
    def port(self) -> int:
        match = wait_until(lambda: re.search(r"on port (\d+)", self.log), 30, "the alerter to report its metrics port")
        assert match is not None
        return int(match[1])

    def get(self, path: str) -> requests.Response:
        return requests.get(f"http://127.0.0.1:{self.port}{path}", timeout=5)

    def metrics(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        """Current samples, keyed by (name, sorted labels)."""
        samples = {}
        for family in text_string_to_metric_families(self.get("/metrics").text):
            for sample in family.samples:
                samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
        return samples

    def metric(self, name: str, **labels: str) -> float:
        return self.metrics().get((name, tuple(sorted(labels.items()))), 0.0)

    def wait_ready(self, timeout: float = 60.0) -> None:
        def ready() -> bool:
            if self.process.poll() is not None:
                raise AssertionError(f"alerter exited with {self.process.returncode}:\n{self.log}")
            try:
                return self.get("/readyz").status_code == 200
            except requests.RequestException:
                return False

        wait_until(ready, timeout, "the alerter to own partitions (/readyz)")

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM and wait (bounded); returns the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        finally:
            self.kill()

    def kill(self) -> None:
        """SIGKILL: no shutdown, no commit, no goodbye."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        self._log.close()


def alerts_by_device(messages: Sequence[Any], *, sentinels: bool = False) -> dict[str, list[dict[str, Any]]]:
    """Alert attachments the stand-in received (notices, summaries, and sentinels unless asked for, left out),
    grouped by device, in arrival order; each also carries the webhook `path` it was posted to."""
    grouped: dict[str, list[dict[str, Any]]] = {}
    for received in messages:
        for attachment in received.message.get("attachments", []):
            if "fields" not in attachment:
                continue  # a summary of alerts held back by the alert budget
            fields = {f["title"]: f.get("value") for f in attachment["fields"]}
            device = fields["Device ID"]
            if sentinels or not device.startswith(SENTINEL):
                grouped.setdefault(device, []).append({**attachment, "by_title": fields, "path": received.path})
    return grouped


def alert_count(messages: Sequence[Any]) -> int:
    return sum(len(v) for v in alerts_by_device(messages).values())
