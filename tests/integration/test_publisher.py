"""The publisher's real entry point against the real cluster: what lands on the topic, shutdown, metrics, failures."""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition
from confluent_kafka.admin import AdminClient
from prometheus_client.parser import text_string_to_metric_families

from publisher.acks import partition_for
from publisher.kafka_sink import KafkaSink, kafka_config
from publisher.settings import load_settings
from shared.codec import CONTENT_TYPE_HEADER, decode_reading
from shared.config import Env
from shared.kafka import cluster_default_replication, consumer_config, ensure_topic
from shared.models import TemperatureReading

pytestmark = pytest.mark.integration

FIELDS = {"device_id", "temperature", "timestamp", "gpu_model", "host_name", "power_consume", "gpu_util"}
# Variables the publisher reads; a developer's own values must not leak into the tests.
OWN_VARIABLES = {
    "REDPANDA_BROKERS", "REDPANDA_TOPIC", "NUM_DEVICES", "INTERVAL_MS", "ABNORMAL_PROBABILITY", "SIMULATOR_SEED",
    "MAX_TICKS", "TOPIC_PARTITIONS", "TOPIC_REPLICATION_FACTOR", "LOG_LEVEL", "LOG_FORMAT", "METRICS_PORT",
    "STARTUP_ATTEMPTS", "STARTUP_BACKOFF_MAX", "FLUSH_TIMEOUT", "MAX_BUFFERED_READINGS", "DELIVERY_TIMEOUT",
    "READINGS_SOURCE", "NVML_DEVICES", "DCGM_EXPORTER_URLS", "DCGM_SCRAPE_TIMEOUT", "HOST_NAME",
    "METRICS_DEVICE_SERIES_LIMIT", "LD_LIBRARY_PATH", "NVML_STAND_IN_STATE",
}
T = TypeVar("T")


@dataclass(frozen=True)
class Record:
    partition: int
    offset: int
    key: bytes
    value: bytes
    headers: list[tuple[str, bytes]]

    @property
    def reading(self) -> TemperatureReading:
        return decode_reading(self.value)


class Publisher:
    """`python -m publisher` in a subprocess, run from an empty folder (no stray .env), logging JSON to a file."""

    def __init__(self, tmp_path: Path, env: dict[str, str], args: tuple[str, ...] = ()) -> None:
        self.log_path = tmp_path / f"publisher-{uuid.uuid4().hex[:6]}.log"
        self._log = self.log_path.open("w")
        base = {k: v for k, v in os.environ.items() if k not in OWN_VARIABLES}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "publisher", *args],
            env={**base, "LOG_FORMAT": "json", "METRICS_PORT": "0", **env},
            cwd=tmp_path,
            stdout=subprocess.DEVNULL,
            stderr=self._log,
        )

    def wait(self, timeout: float = 90) -> int:
        try:
            return self.process.wait(timeout)
        finally:
            self._log.close()

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        self._log.close()

    def text(self) -> str:
        return self.log_path.read_text()

    def events(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.text().splitlines() if line.startswith("{")]

    def summary(self) -> dict[str, Any]:
        found = [e for e in self.events() if "readings_per_s" in e]
        assert len(found) == 1, self.text()[-3000:]
        return found[0]

    def metrics_port(self, timeout: float = 30) -> int:
        return int(within(timeout, lambda: next(
            (e["port"] for e in self.events() if e.get("logger") == "shared.health" and "port" in e), None
        )))


def within(timeout: float, probe: Callable[[], T | None], interval: float = 0.1) -> T:
    """The first non-None result of `probe`, or fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = probe()
        if result is not None:
            return result
        time.sleep(interval)
    raise AssertionError(f"nothing within {timeout}s")


def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def status(port: int, path: str) -> int:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
        return int(response.status)


def read_topic(bootstrap: str, topic: str, timeout: float = 60) -> list[Record]:
    """Every record on the topic (the producer has finished), in offset order per partition."""
    consumer = Consumer(consumer_config(bootstrap, "tests-publisher-reader", f"reader-{uuid.uuid4().hex}", "earliest"))
    try:
        partitions = list(consumer.list_topics(topic, timeout=10).topics[topic].partitions)
        ends = {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in partitions}
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
        records: list[Record] = []
        deadline = time.monotonic() + timeout
        while len(records) < sum(ends.values()):
            assert time.monotonic() < deadline, f"read {len(records)} of {sum(ends.values())} records"
            for message in consumer.consume(num_messages=10_000, timeout=1.0):
                if message.error():
                    continue
                key, value, partition, offset = message.key(), message.value(), message.partition(), message.offset()
                assert key is not None
                assert value is not None
                assert partition is not None
                assert offset is not None
                raw_headers = message.headers() or []
                assert isinstance(raw_headers, list), "consumed headers come as a list of pairs"
                headers = [(name, data) for name, data in raw_headers if isinstance(data, bytes)]
                records.append(Record(partition, offset, key, value, headers))
        return records
    finally:
        consumer.close()


def env_for(bootstrap: str, topic: str, **values: str) -> dict[str, str]:
    return {"REDPANDA_BROKERS": bootstrap, "REDPANDA_TOPIC": topic, **values}


def test_n_ticks_of_m_devices_put_n_times_m_valid_records_on_a_new_topic(
    kafka_bootstrap: str, kafka_admin: AdminClient, unique: str, tmp_path: Path
) -> None:
    """12 ticks of 7 devices: 84 records, each the seven-field JSON keyed by its device with the content-type
    header, per-device timestamps increasing, on a topic created with TOPIC_PARTITIONS and the cluster's RF."""
    topic = f"readings-{unique}"
    env = env_for(kafka_bootstrap, topic, NUM_DEVICES="7", INTERVAL_MS="20", TOPIC_PARTITIONS="3")
    publisher = Publisher(tmp_path, env, ("--ticks", "12"))
    assert publisher.wait() == 0, publisher.text()[-3000:]
    summary = publisher.summary()
    assert (summary["produced"], summary["delivered"], summary["undelivered"]) == (84, 84, 0)

    metadata = kafka_admin.list_topics(topic, timeout=10).topics[topic]
    assert len(metadata.partitions) == 3
    default_rf = cluster_default_replication(kafka_admin)
    if default_rf is not None:
        assert {len(p.replicas) for p in metadata.partitions.values()} == {default_rf}

    records = read_topic(kafka_bootstrap, topic)
    assert len(records) == 84
    by_device: dict[str, list[Record]] = defaultdict(list)
    for record in sorted(records, key=lambda r: (r.partition, r.offset)):
        assert set(json.loads(record.value)) == FIELDS
        assert record.reading.device_id == record.key.decode()
        assert (CONTENT_TYPE_HEADER[0], CONTENT_TYPE_HEADER[1]) in record.headers
        by_device[record.key.decode()].append(record)
    assert len(by_device) == 7
    for device_records in by_device.values():
        assert len(device_records) == 12
        assert len({r.partition for r in device_records}) == 1, "a device always lands on one partition"
        stamps = [r.reading.timestamp for r in device_records]
        assert all(a < b for a, b in itertools.pairwise(stamps))


def test_same_seed_gives_the_same_readings_apart_from_timestamps(
    kafka_bootstrap: str, unique: str, tmp_path: Path
) -> None:
    """Two runs with SIMULATOR_SEED=1234 publish the same values in the same order per device."""
    sequences = []
    for run in range(2):
        topic = f"readings-{unique}-{run}"
        env = env_for(kafka_bootstrap, topic, NUM_DEVICES="5", INTERVAL_MS="0", SIMULATOR_SEED="1234")
        publisher = Publisher(tmp_path, env, ("--ticks", "20"))
        assert publisher.wait() == 0, publisher.text()[-3000:]
        per_device: dict[bytes, list[tuple[Any, ...]]] = defaultdict(list)
        for record in sorted(read_topic(kafka_bootstrap, topic), key=lambda r: (r.partition, r.offset)):
            r = record.reading
            per_device[record.key].append((r.temperature, r.power_consume, r.gpu_util, r.gpu_model, r.host_name))
        sequences.append(dict(per_device))
    assert sum(len(v) for v in sequences[0].values()) == 100
    assert sequences[0] == sequences[1]


def test_existing_topic_is_left_as_it_is(
    kafka_bootstrap: str, kafka_admin: AdminClient, unique: str, tmp_path: Path
) -> None:
    """A topic that already exists keeps its partition count whatever TOPIC_PARTITIONS says."""
    topic = f"readings-{unique}"
    ensure_topic(kafka_admin, topic, partitions=2)
    publisher = Publisher(tmp_path, env_for(kafka_bootstrap, topic, TOPIC_PARTITIONS="5"), ("--ticks", "1"))
    assert publisher.wait() == 0, publisher.text()[-3000:]
    assert len(kafka_admin.list_topics(topic, timeout=10).topics[topic].partitions) == 2
    assert len(read_topic(kafka_bootstrap, topic)) == 5


def test_sigterm_during_a_fast_run_delivers_and_reports_every_reading(
    kafka_bootstrap: str, unique: str, tmp_path: Path
) -> None:
    """SIGTERM mid-run stops the ticker, flushes, exits 0, and exactly the readings it reports delivered are on
    the topic, each once; a scrape taken before the signal never claims more than that."""
    topic = f"readings-{unique}"
    # A bounded buffer and a generous flush keep the shutdown within the test's time even on a busy machine.
    env = env_for(
        kafka_bootstrap, topic, NUM_DEVICES="2000", INTERVAL_MS="0", MAX_BUFFERED_READINGS="100000",
        FLUSH_TIMEOUT="120s",
    )
    publisher = Publisher(tmp_path, env)
    try:
        port = publisher.metrics_port()
        produced_key = ("gpu_publisher_readings_produced_total", ())
        within(60, lambda: True if scrape(port).get(produced_key, 0) >= 60_000 else None)
        mid_run = scrape(port)
        publisher.process.send_signal(signal.SIGTERM)
        assert publisher.wait(150) == 0, publisher.text()[-3000:]
    finally:
        publisher.kill()
    summary = publisher.summary()
    assert summary["undelivered"] == 0
    assert summary["delivered"] == summary["produced"] >= 60_000
    assert mid_run[("gpu_publisher_readings_delivered_total", ())] <= summary["delivered"]
    assert "received SIGTERM" in publisher.text()

    records = read_topic(kafka_bootstrap, topic, timeout=120)
    assert len(records) == summary["delivered"]
    per_device = Counter(record.key for record in records)
    assert len(per_device) == 2000
    assert max(per_device.values()) - min(per_device.values()) <= 1
    assert len({(r.key, json.loads(r.value)["timestamp"]) for r in records}) == len(records), "no duplicates"


def test_metrics_scraped_during_a_run_match_the_topic(kafka_bootstrap: str, unique: str, tmp_path: Path) -> None:
    """A stable mid-run scrape agrees with the topic: produced = devices x ticks, hot readings counted once
    acknowledged (never more than were published), each device's gauge equal to its latest record; /healthz and
    /readyz answer 200 while it runs."""
    topic = f"readings-{unique}"
    devices = 20
    env = env_for(kafka_bootstrap, topic, NUM_DEVICES=str(devices), INTERVAL_MS="250", ABNORMAL_PROBABILITY="0.3")
    publisher = Publisher(tmp_path, env)
    try:
        port = publisher.metrics_port()
        ticks_key = ("gpu_publisher_ticks_total", ())

        def per_tick(sample: dict[tuple[str, tuple[tuple[str, str], ...]], float]) -> dict[Any, float]:
            """The metrics a tick moves (delivery counts and queue depth also move between ticks)."""
            moved_by_ticks = ("gpu_publisher_ticks", "gpu_publisher_readings_produced", "gpu_publisher_high_temp",
                              "gpu_temperature_celsius")
            return {key: value for key, value in sample.items() if key[0].startswith(moved_by_ticks)}

        def stable_snapshot() -> dict[tuple[str, tuple[tuple[str, str], ...]], float] | None:
            first = scrape(port)
            if first.get(ticks_key, 0) < 6:
                return None
            return first if per_tick(scrape(port)) == per_tick(first) else None  # no tick between the scrapes

        snapshot = within(60, stable_snapshot, interval=0.05)
        assert status(port, "/healthz") == 200
        assert status(port, "/readyz") == 200
        publisher.process.send_signal(signal.SIGTERM)
        assert publisher.wait(60) == 0, publisher.text()[-3000:]
    finally:
        publisher.kill()

    ticks = int(snapshot[ticks_key])
    assert snapshot[("gpu_publisher_readings_produced_total", ())] == devices * ticks
    assert snapshot[("gpu_publisher_readings_delivered_total", ())] <= devices * ticks
    records = read_topic(kafka_bootstrap, topic)
    assert len(records) == publisher.summary()["delivered"]
    per_device: dict[str, list[TemperatureReading]] = defaultdict(list)
    for record in sorted(records, key=lambda r: (r.partition, r.offset)):
        per_device[record.key.decode()].append(record.reading)
    first_ticks = [reading for readings in per_device.values() for reading in readings[:ticks]]
    assert len(first_ticks) == devices * ticks
    hot = sum(reading.temperature > 80 for reading in first_ticks)
    assert hot > 0
    assert 0 < snapshot[("gpu_publisher_high_temperature_readings_total", ())] <= hot
    gauges = {
        dict(labels)["device"]: (value, dict(labels))
        for (name, labels), value in snapshot.items()
        if name == "gpu_temperature_celsius"
    }
    assert len(gauges) == devices
    for device, readings in per_device.items():
        value, labels = gauges[device]
        latest = readings[ticks - 1]
        assert value == latest.temperature
        assert (labels["model"], labels["host"]) == (latest.gpu_model, latest.host_name)


def test_high_temp_lines_name_exactly_the_hot_readings_on_the_topic(
    kafka_bootstrap: str, unique: str, tmp_path: Path
) -> None:
    """Every `Published HIGH TEMP` line names a reading that is on the topic (device, temperature to 0.01 °C), and
    lines plus the summary lines' counts add up to the hot readings delivered, as the metric says."""
    topic = f"readings-{unique}"
    env = env_for(kafka_bootstrap, topic, NUM_DEVICES="8", INTERVAL_MS="50", ABNORMAL_PROBABILITY="0.5")
    publisher = Publisher(tmp_path, env, ("--ticks", "15"))
    assert publisher.wait() == 0, publisher.text()[-3000:]
    hot = Counter(
        (r.reading.device_id, f"{r.reading.temperature:.2f}") for r in read_topic(kafka_bootstrap, topic)
        if r.reading.temperature > 80
    )
    lines = [e for e in publisher.events() if e["event"].startswith("Published HIGH TEMP")]
    logged = Counter((e["device"], f"{e['temperature']:.2f}") for e in lines if "device" in e)
    assert logged
    assert not logged - hot, "no line for a reading that is not on the topic"
    assert logged.total() + sum(e.get("suppressed", 0) for e in lines) == hot.total()


def test_refused_hot_readings_are_never_logged_as_published(
    kafka_bootstrap: str, kafka_admin: AdminClient, unique: str, tmp_path: Path
) -> None:
    """When the cluster refuses every reading, no `Published HIGH TEMP` line appears (the original logs only after
    ProduceSync succeeded), though many readings were hot and queued."""
    topic = f"readings-{unique}"
    ensure_topic(kafka_admin, topic, partitions=2, config={"max.message.bytes": "100"})
    env = env_for(kafka_bootstrap, topic, INTERVAL_MS="0", NUM_DEVICES="20", ABNORMAL_PROBABILITY="1")
    publisher = Publisher(tmp_path, env, ("--ticks", "5"))
    assert publisher.wait() == 1, publisher.text()[-3000:]
    assert publisher.summary()["failed"] == 100
    assert not [e for e in publisher.events() if e["event"].startswith("Published HIGH TEMP")]


def test_sink_partitions_keys_as_librdkafka_does(kafka_bootstrap: str, kafka_admin: AdminClient, unique: str) -> None:
    """The murmur2 partition the ack tracker assumes for each key is where librdkafka really put its record."""
    topic = f"readings-{unique}"
    ensure_topic(kafka_admin, topic, partitions=5)
    settings = load_settings(Env({"REDPANDA_BROKERS": kafka_bootstrap, "NUM_DEVICES": "10"}))
    sink = KafkaSink(kafka_config(settings), topic, partitions=5)
    keys = [f"gpu-{i:04d}".encode() for i in range(200)] + [f"GPU-{uuid.uuid4()}".encode() for _ in range(50)]
    assert sink.send(keys, [b"{}"] * len(keys), give_up=lambda: False) == len(keys)
    assert sink.flush(60) == 0
    placed = {r.key: r.partition for r in read_topic(kafka_bootstrap, topic)}
    assert placed == {key: partition_for(key, 5) for key in keys}


def test_rejected_readings_are_counted_logged_and_fail_the_run(
    kafka_bootstrap: str, kafka_admin: AdminClient, unique: str, tmp_path: Path
) -> None:
    """When the cluster refuses every reading (records over the topic's max.message.bytes) each failure is
    counted by reason and logged, none is reported delivered, and the exit code is 1."""
    topic = f"readings-{unique}"
    ensure_topic(kafka_admin, topic, partitions=1, config={"max.message.bytes": "100"})
    publisher = Publisher(tmp_path, env_for(kafka_bootstrap, topic, INTERVAL_MS="0"), ("--ticks", "4"))
    assert publisher.wait() == 1, publisher.text()[-3000:]
    summary = publisher.summary()
    assert (summary["produced"], summary["failed"], summary["delivered"]) == (20, 20, 0)
    failures = [e for e in publisher.events() if e["event"].startswith("delivery failed")]
    assert failures
    assert {e["reason"] for e in failures} == {"MSG_SIZE_TOO_LARGE"}
    assert summary["level"] == "error"


def test_unreachable_cluster_is_retried_then_reported(unique: str, tmp_path: Path) -> None:
    """With nothing listening, start-up logs one line per attempt and exits 1 with a clear message, no traceback."""
    with socket_on_free_port() as port:  # reserved, so nothing else can appear there during the test
        env = {
            "REDPANDA_BROKERS": f"127.0.0.1:{port}",
            "REDPANDA_TOPIC": f"readings-{unique}",
            "STARTUP_ATTEMPTS": "2",
            "STARTUP_BACKOFF_MAX": "100ms",
        }
        publisher = Publisher(tmp_path, env)
        assert publisher.wait(60) == 1
    text = publisher.text()
    assert "Traceback" not in text
    attempts = [e for e in publisher.events() if "not reachable (attempt" in e["event"]]
    assert len(attempts) == 1
    assert re.search(r"not reachable after 2 attempts \(STARTUP_ATTEMPTS=2\); giving up", text)


def test_replication_factor_above_the_broker_count_is_a_configuration_error(
    kafka_bootstrap: str, unique: str, tmp_path: Path
) -> None:
    """TOPIC_REPLICATION_FACTOR larger than the cluster exits 2 with one line naming the variable."""
    env = env_for(kafka_bootstrap, f"readings-{unique}", TOPIC_REPLICATION_FACTOR="9")
    publisher = Publisher(tmp_path, env)
    assert publisher.wait() == 2
    lines = [line for line in publisher.text().splitlines() if "configuration error" in line]
    assert len(lines) == 1
    assert lines[0].startswith("gpu-temp-publisher: configuration error: TOPIC_REPLICATION_FACTOR=9: expected at most")
    assert "Traceback" not in publisher.text()


def test_sink_waits_out_a_full_queue_without_dropping_or_reordering(
    kafka_bootstrap: str, kafka_admin: AdminClient, unique: str
) -> None:
    """With room for only 20 readings in librdkafka's queue, 3,000 sends all go through, in order per key."""
    topic = f"readings-{unique}"
    ensure_topic(kafka_admin, topic, partitions=3)
    settings = load_settings(
        Env({"REDPANDA_BROKERS": kafka_bootstrap, "NUM_DEVICES": "10", "MAX_BUFFERED_READINGS": "10"})
    )
    sink = KafkaSink(kafka_config(settings), topic, partitions=3)
    keys = [f"dev-{i % 10}".encode() for i in range(3000)]
    values = [f'{{"n":{i}}}'.encode() for i in range(3000)]
    assert sink.send(keys, values, give_up=lambda: False) == 3000
    assert sink.flush(60) == 0
    assert sink.take_failures() == {}
    records = sorted(read_topic(kafka_bootstrap, topic), key=lambda r: (r.partition, r.offset))
    assert len(records) == 3000
    per_key: dict[bytes, list[int]] = defaultdict(list)
    for record in records:
        per_key[record.key].append(json.loads(record.value)["n"])
    for numbers in per_key.values():
        assert numbers == sorted(numbers)
        assert len(numbers) == 300


@contextlib.contextmanager
def socket_on_free_port() -> Iterator[int]:
    """A bound but not listening TCP socket: connections to its port are refused, and nothing else can take it."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield int(sock.getsockname()[1])
