"""Publisher throughput against a bare confluent-kafka produce loop and Kafka's own producer, on the same cluster.

All run as fresh subprocesses, one after the other, in rounds that rotate which goes first
(with a pause between runs, so the brokers' replication of one run does not slow the next):
- publisher: the real entry point (`python -m publisher`) with NUM_DEVICES=10000,
  INTERVAL_MS=0 and MAX_TICKS; its rate comes from its own closing log line
  (readings delivered / seconds from the first tick to the end of the flush);
- bare loop: the same producer settings (`publisher.kafka_sink.kafka_config`),
  keys, header and record size, the values serialized before the clock starts,
  produced with the cheapest call confluent-kafka offers, then flushed;
- Kafka's ProducerPerformance (org.apache.kafka.tools, the kafka-tools jar of the local
  cluster's version, fetched by `make install`): the same number of records, drawn from a
  payload file of real readings (one simulated tick, as the publisher writes them), with the
  same producer settings where Java has them (acks=all, idempotence, linger 5 ms, 1 MB batches,
  lz4). It sends no keys and no header (it has no option for them), so its records spread by
  the sticky partitioner instead of by device: the reference for what the cluster can take.
Each writes to a fresh topic created here with the publisher's defaults (6
partitions, the cluster's replication factor). Peak RSS is the child's
maximum resident set (wait4), so the parent's own memory never counts.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from bench import targets
from bench.table import print_table

DEVICES = 10_000
TICKS = 50
ROUNDS = 5
SEED = 7
PARTITIONS = 6
SETTLE_SECONDS = 3.0
KAFKA_LIB = Path(__file__).resolve().parent.parent / "local-kafka" / "lib"
_JAVA_SUMMARY = re.compile(r"(\d+) records sent, ([\d.]+) records/sec")


@dataclass(frozen=True)
class Run:
    rate: float  # readings delivered per second
    peak_rss_mib: float
    cpu_us: float  # CPU microseconds per reading, over the measured span (ProducerPerformance: its whole JVM)


def _environment(bootstrap: str, topic: str) -> dict[str, str]:
    return {
        **os.environ,
        "REDPANDA_BROKERS": bootstrap,
        "REDPANDA_TOPIC": topic,
        "NUM_DEVICES": str(DEVICES),
        "INTERVAL_MS": "0",
        "MAX_TICKS": str(TICKS),
        "SIMULATOR_SEED": str(SEED),
        "TOPIC_PARTITIONS": str(PARTITIONS),
        "METRICS_PORT": "0",
        "LOG_FORMAT": "json",
        "LOG_LEVEL": "info",
    }


def _run_child(command: list[str], env: dict[str, str], timeout: float = 300) -> tuple[str, str, float, float]:
    """Run to completion; stdout, stderr, the child's peak RSS in MiB and its CPU seconds (wait4: this child's)."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        child = subprocess.Popen(command, env=env, stdout=out, stderr=err, text=True)
        deadline = time.monotonic() + timeout
        while True:
            pid, status, usage = os.wait4(child.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() > deadline:
                child.kill()
                os.wait4(child.pid, 0)
                raise RuntimeError(f"{command[:3]} did not finish within {timeout}s")
            time.sleep(0.05)
        child.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    if child.returncode != 0:
        raise RuntimeError(f"{command[:3]} exited with {child.returncode}: {stderr.strip()[-2000:]}")
    return stdout, stderr, usage.ru_maxrss / 1024, usage.ru_utime + usage.ru_stime


def _publisher_run(bootstrap: str, topic: str) -> Run:
    command = [sys.executable, "-m", "publisher"]
    _, err, rss, _ = _run_child(command, _environment(bootstrap, topic))
    for line in err.splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict) and "readings_per_s" in entry:
            if entry["delivered"] != DEVICES * TICKS:
                raise RuntimeError(f"publisher delivered {entry['delivered']} of {DEVICES * TICKS}")
            return Run(float(entry["readings_per_s"]), rss, entry["cpu_s"] / entry["delivered"] * 1e6)
    raise RuntimeError("publisher printed no summary line")


def _bare_run(bootstrap: str, topic: str) -> Run:
    command = [sys.executable, "-m", "bench.publisher", "bare"]
    out, _, rss, _ = _run_child(command, _environment(bootstrap, topic))
    result = json.loads(out)
    return Run(float(result["rate"]), rss, result["cpu_s"] / (DEVICES * TICKS) * 1e6)


def bare_loop() -> None:
    """Child: produce DEVICES * TICKS pre-serialized readings as fast as confluent-kafka goes; print the rate."""
    import numpy as np  # noqa: PLC0415 - child-only imports
    from confluent_kafka import Producer  # noqa: PLC0415

    from publisher.encoding import ReadingEncoder  # noqa: PLC0415
    from publisher.kafka_sink import kafka_config  # noqa: PLC0415
    from publisher.settings import load_settings  # noqa: PLC0415
    from publisher.simulator import advance, build_fleet, initial_state  # noqa: PLC0415
    from shared.codec import CONTENT_TYPE_HEADER  # noqa: PLC0415
    from shared.config import Env  # noqa: PLC0415

    settings = load_settings(Env(os.environ))
    rng = np.random.default_rng(SEED)
    fleet = build_fleet(DEVICES, rng)
    readings, _ = advance(fleet, initial_state(fleet, rng), settings.abnormal_probability, rng)
    encoder = ReadingEncoder(fleet)
    records = list(zip(encoder.keys, encoder.encode(readings), strict=True))
    producer = Producer(kafka_config(settings))
    produce, poll, topic = producer.produce, producer.poll, settings.topic
    headers: list[tuple[str, str | bytes | None]] = [CONTENT_TYPE_HEADER]
    start, cpu_start = time.monotonic(), time.process_time()
    for _ in range(TICKS):
        for key, value in records:
            while True:
                try:
                    produce(topic, value, key, -1, None, None, 0, headers)
                    break
                except BufferError:
                    poll(0.05)
        poll(0)
    left = producer.flush(120)
    elapsed, cpu = time.monotonic() - start, time.process_time() - cpu_start
    if left:
        raise SystemExit(f"bare loop: {left} records not delivered")
    print(json.dumps({"rate": DEVICES * TICKS / elapsed, "cpu_s": cpu}))


def write_payload_file(folder: Path) -> Path:
    """One simulated tick of DEVICES readings, as the publisher writes them, one per line (ProducerPerformance's
    default payload delimiter; JSON text never holds a raw newline)."""
    import numpy as np  # noqa: PLC0415

    from publisher.encoding import ReadingEncoder  # noqa: PLC0415
    from publisher.simulator import advance, build_fleet, initial_state  # noqa: PLC0415

    rng = np.random.default_rng(SEED)
    fleet = build_fleet(DEVICES, rng)
    readings, _ = advance(fleet, initial_state(fleet, rng), 0.05, rng)
    path = folder / "readings.jsonl"
    path.write_bytes(b"\n".join(ReadingEncoder(fleet).encode(readings)))
    return path


def _java() -> str:
    home = os.environ.get("JAVA_HOME")
    java = str(Path(home) / "bin" / "java") if home else shutil.which("java")
    if not java:
        raise RuntimeError("java not found (ProducerPerformance needs Java 17+)")
    if not list(KAFKA_LIB.glob("kafka-tools-*.jar")):
        raise RuntimeError(f"no kafka-tools jar in {KAFKA_LIB}: run `make install`")
    return java


def _kafka_run(bootstrap: str, topic: str, payload: Path) -> Run:
    """ProducerPerformance over the payload file; its own summary line gives the rate (sending start to end)."""
    props = [
        f"bootstrap.servers={bootstrap}", "acks=all", "enable.idempotence=true", "linger.ms=5",
        "batch.size=1000000", "compression.type=lz4", "buffer.memory=536870912", "client.id=bench-producer-perf",
    ]
    command = [
        _java(), "-Xmx512m", "-cp", f"{KAFKA_LIB}/*", "org.apache.kafka.tools.ProducerPerformance",
        "--topic", topic, "--num-records", str(DEVICES * TICKS), "--throughput", "-1",
        "--payload-file", str(payload), "--producer-props", *props,
    ]
    out, _, rss, cpu = _run_child(command, dict(os.environ))
    summaries = _JAVA_SUMMARY.findall(out)
    if not summaries or int(summaries[-1][0]) != DEVICES * TICKS:
        raise RuntimeError(f"ProducerPerformance printed no summary for {DEVICES * TICKS} records: {out[-500:]}")
    return Run(float(summaries[-1][1]), rss, cpu / (DEVICES * TICKS) * 1e6)


def main(bootstrap: str) -> None:
    from shared.kafka import admin_client, ensure_topic  # noqa: PLC0415

    admin = admin_client(bootstrap, "bench-publisher")
    topics: list[str] = []
    runs: dict[str, list[Run]] = {"publisher": [], "bare": [], "kafka": []}
    with tempfile.TemporaryDirectory() as folder:
        payload = write_payload_file(Path(folder))
        runners = (
            ("publisher", lambda t: _publisher_run(bootstrap, t)),
            ("bare", lambda t: _bare_run(bootstrap, t)),
            ("kafka", lambda t: _kafka_run(bootstrap, t, payload)),
        )
        try:
            for kind, run in runners:  # warm-up: JIT, page cache, the brokers' first segments; not counted
                topic = f"bench-publisher-warm-up-{kind}-{uuid.uuid4().hex[:8]}"
                topics.append(topic)
                ensure_topic(admin, topic, partitions=PARTITIONS)
                run(topic)
            for round_number in range(ROUNDS):
                # The brokers are still replicating one run when the next starts: rotate who goes first,
                # and let them settle in between, so no side always pays for another.
                shift = round_number % len(runners)
                for kind, run in runners[shift:] + runners[:shift]:
                    topic = f"bench-publisher-{kind}-{uuid.uuid4().hex[:8]}"
                    topics.append(topic)
                    ensure_topic(admin, topic, partitions=PARTITIONS)
                    time.sleep(SETTLE_SECONDS)
                    runs[kind].append(run(topic))
        finally:
            if topics:
                admin.delete_topics(topics, operation_timeout=30)
    rows: list[list[object]] = []
    for index, (mine, bare, kafka) in enumerate(zip(runs["publisher"], runs["bare"], runs["kafka"], strict=True)):
        rows.append([f"round {index + 1}", mine.rate, bare.rate, kafka.rate, mine.rate / bare.rate,
                     mine.rate / kafka.rate, mine.cpu_us, bare.cpu_us, kafka.cpu_us, mine.peak_rss_mib])
    columns = list(zip(*[row[1:] for row in rows], strict=True))
    spread = [f"{min(c):,.2f}-{max(c):,.2f}" if max(c) < 100 else f"{min(c):,.0f}-{max(c):,.0f}" for c in columns]
    medians = [statistics.median(c) for c in columns]
    rows.append(["median", *medians])
    rows.append(["range", *spread])
    print_table(
        f"publisher: {DEVICES:,} devices, INTERVAL_MS=0, {DEVICES * TICKS:,} readings a run, {ROUNDS} rounds"
        " (targets: >= 100,000 readings/s and >= 0.90 of the bare loop)",
        ["run", "publisher readings/s", "bare loop readings/s", "ProducerPerformance records/s",
         "publisher / bare", "publisher / ProducerPerformance", "publisher CPU µs/reading", "bare CPU µs/reading",
         "ProducerPerformance CPU µs/record (whole JVM)", "publisher peak RSS MiB"],
        rows,
    )
    rate, ratio = medians[0], medians[3]
    targets.check("publisher", f"publisher >= 100,000 readings/s (median of {ROUNDS})", f"{rate:,.0f}", rate >= 100_000)
    targets.check("publisher", f"publisher >= 0.90 x the bare loop (median of {ROUNDS})", f"{ratio:.2f}", ratio >= 0.9)


if __name__ == "__main__":
    if sys.argv[1:] == ["bare"]:
        bare_loop()
    else:
        main(os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092,127.0.0.1:9093"))
