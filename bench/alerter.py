"""Alerter benchmarks: consumption throughput against Kafka's own consumer benchmark, and end-to-end alert latency.

1. Throughput: a fresh topic pre-filled with 1,000,000 readings (none hot) is
   read, each time by a fresh consumer group from the beginning, by:
   Kafka's ConsumerPerformance (org.apache.kafka.tools, the kafka-tools jar of
   the local cluster's version, fetched by Maven into local-kafka/lib), a bare
   confluent-kafka loop that only counts what consume() returns (once with
   librdkafka's default settings, once with the alerter's consumer settings),
   and the real alerter code path (AlerterService, built by the same bootstrap
   as `python -m alerter`). Two rounds, each in the same order. The rate runs
   from partition assignment to the last reading (ConsumerPerformance's own
   "fetch" rate is measured the same way); CPU is the process's user + system
   time: for the JVM, the whole child process (start-up and JIT included), for
   the others this process over the run. Targets: the alerter at >= 0.5 of
   ConsumerPerformance's rate (best of the two rounds each) and >= 100,000
   readings/s.
2. Latency: readings produced at 1,000/s, 2 % of them hot (ALERT_COOLDOWN=0,
   so each hot one alerts), through `python -m alerter` as a process, to the
   Slack stand-in; latency = arrival at the stand-in - the reading's timestamp,
   taken just before produce(). Target: p99 < 50 ms.
"""

from __future__ import annotations

import csv
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from confluent_kafka import Consumer, Producer

from alerter.bootstrap import build, prepare_topics
from alerter.metrics import AlerterMetrics
from alerter.settings import load_settings
from bench import targets
from bench.table import print_table
from shared.codec import encode
from shared.config import Env
from shared.kafka import admin_client, common_config, consumer_config, ensure_topic, produce, producer_config
from shared.models import TemperatureReading
from slack_stand_in import Received, SlackStandIn

READINGS = 1_000_000
PARTITIONS = 3
BATCH = 2000
ROUNDS = 2
RATE = 1000  # readings/s for the latency run
HOT_SHARE = 0.02
LATENCY_SECONDS = 30
WARM_UP_SECONDS = 3
KAFKA_LIB = Path(os.environ.get("LOCAL_KAFKA_LIB", Path(__file__).resolve().parent.parent / "local-kafka" / "lib"))
TOOL = "org.apache.kafka.tools.ConsumerPerformance"


def main(bootstrap: str) -> None:
    # Latency first: right after a million-record pre-fill the brokers are still replicating and
    # writing it back, and that tail (seen by a bare consumer just as much) would be measured instead.
    latency(bootstrap)
    throughput(bootstrap)


# -- throughput ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Run:
    rate: float  # readings/s from assignment to the last reading
    cpu: float  # CPU seconds of the process that read

    @property
    def per_cpu_second(self) -> float:
        return READINGS / self.cpu if self.cpu > 0 else float("nan")


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
        produce(producer, topic, value, key)
        if i % 10_000 == 0:
            producer.poll(0)
    if producer.flush(120) != 0:
        raise RuntimeError("pre-fill did not complete")
    return READINGS / (time.perf_counter() - started)


def _consumer_performance(bootstrap: str, topic: str) -> Run:
    """Kafka's own consumer benchmark in a JVM; its fetch rate excludes the group join, as ours do."""
    java = os.path.join(os.environ["JAVA_HOME"], "bin", "java") if os.environ.get("JAVA_HOME") else shutil.which("java")
    if java is None or not any(KAFKA_LIB.glob("kafka-tools-*.jar")):
        raise RuntimeError(f"java or the kafka-tools jar in {KAFKA_LIB} missing: run `make kafka-jars`")
    command = [java, "-Xmx512m", "-cp", f"{KAFKA_LIB}/*", TOOL, "--bootstrap-server", bootstrap, "--topic", topic]
    command += ["--messages", str(READINGS), "--group", f"bench-cp-{uuid.uuid4().hex}", "--timeout", "60000"]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    rows = [row for row in csv.reader(done.stdout.splitlines()) if row]
    if done.returncode != 0 or len(rows) < 2:
        raise RuntimeError(f"ConsumerPerformance failed ({done.returncode}): {done.stderr[-2000:]}")
    result = dict(zip((h.strip() for h in rows[0]), (v.strip() for v in rows[-1]), strict=False))
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return Run(float(result["fetch.nMsg.sec"]), cpu)


def _bare(bootstrap: str, topic: str, *, defaults: bool) -> Run:
    """The floor: consume() in batches and count, nothing else; librdkafka's defaults or the alerter's settings."""
    group = f"bench-bare-{uuid.uuid4().hex}"
    if defaults:
        config = {**common_config(bootstrap, "bench-bare"), "group.id": group, "auto.offset.reset": "earliest"}
    else:
        config = consumer_config(bootstrap, "bench-bare", group, "earliest")
    assigned: list[float] = []
    cpu = time.process_time()
    consumer = Consumer(config)
    consumer.subscribe([topic], on_assign=lambda _c, _p: assigned.append(time.perf_counter()))
    count = 0
    try:
        while count < READINGS:
            count += len(consumer.consume(BATCH, 1.0))
        return Run(count / (time.perf_counter() - assigned[0]), time.process_time() - cpu)
    finally:
        consumer.close()


def _alerter(bootstrap: str, topic: str, slack_url: str) -> Run:
    """The real service loop (decode, threshold, offsets, metrics, commits) from its assignment to its last reading."""
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
    cpu = time.process_time()
    thread.start()
    try:
        _poll_until(service.ready)  # it owns its partitions (and read the empty alerts topic back)
        started = time.perf_counter()
        _poll_until(lambda: service.processed >= READINGS)
        return Run(READINGS / (time.perf_counter() - started), time.process_time() - cpu)
    finally:
        stop.set()
        thread.join(60)
        if client is not None:
            client.close()


def _poll_until(condition: Callable[[], bool]) -> None:
    while not condition():
        time.sleep(0.005)  # rarely: this thread must not take the GIL from the one measured


def throughput(bootstrap: str) -> None:
    topic = f"bench-alerter-{uuid.uuid4().hex[:8]}"
    produced = _prefill(bootstrap, topic)
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())  # other work on the machine skews every row alike
    names = (
        "Kafka ConsumerPerformance (JVM)",
        "bare confluent-kafka loop, librdkafka defaults",
        "bare confluent-kafka loop, the alerter's consumer settings",
        "alerter (AlerterService)",
    )
    runs: dict[str, list[Run]] = {name: [] for name in names}
    with SlackStandIn() as slack:
        for _ in range(ROUNDS):
            runs[names[0]].append(_consumer_performance(bootstrap, topic))
            runs[names[1]].append(_bare(bootstrap, topic, defaults=True))
            runs[names[2]].append(_bare(bootstrap, topic, defaults=False))
            runs[names[3]].append(_alerter(bootstrap, topic, slack.webhook_url()))
        received = sum(1 for r in slack.received if r.message.get("attachments"))
    best = {name: max(r.rate for r in rounds) for name, rounds in runs.items()}
    reference = best[names[0]]
    rows: list[list[object]] = []
    for name, rounds in runs.items():
        for number, run in enumerate(rounds, start=1):
            rows.append([name, number, run.rate, run.cpu, run.per_cpu_second, run.rate / reference])
    for name in names:
        per_cpu = statistics.median(r.per_cpu_second for r in runs[name])
        rows.append([name, "best", best[name], "-", per_cpu, best[name] / reference])
    print_table(
        f"Alerter throughput: {READINGS:,} readings (none hot) on {PARTITIONS} partitions, pre-filled at "
        f"{produced:,.0f}/s; alerts sent: {received} (expected 0); load average before: {load}.\n"
        "Rate: from partition assignment to the last reading. CPU: user + system time of the reading process "
        "(the JVM's includes its start-up); 'best' rows: the best rate and the median readings/CPU-s",
        ["consumer", "round", "readings/s", "CPU s", "readings/CPU-s", "x ConsumerPerformance (best)"],
        rows,
    )
    ours = best[names[3]]
    targets.check(
        "alerter", f"alerter >= 0.5 x ConsumerPerformance (best of {ROUNDS})", f"{ours / reference:.2f}",
        ours >= 0.5 * reference,
    )
    targets.check("alerter", "alerter >= 100,000 readings/s (best)", f"{ours:,.0f}", ours >= 100_000)


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
            "ALERT_BUDGET_PER_MINUTE": "100000",  # 20 alerts a second, each measured: no summary
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
    bare_p99 = p99.get("Kafka only: bare consumer")
    targets.check(
        "alerter",
        "alerter p99 < 50 ms, produce -> Slack stand-in",
        "no alerts" if ours is None else f"{ours:.1f} ms (the bare consumer's p99: "
        + ("-" if bare_p99 is None else f"{bare_p99:.1f} ms") + ")",
        ours is not None and ours < 50,
    )


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
