"""Publisher throughput against a bare confluent-kafka produce loop, side by side on the same cluster.

Both run as fresh subprocesses, one after the other, in rounds that alternate which goes first
(with a pause between runs, so the brokers' replication of one run does not slow the next):
- publisher: the real entry point (`python -m publisher`) with NUM_DEVICES=10000,
  INTERVAL_MS=0 and MAX_TICKS; its rate comes from its own closing log line
  (readings delivered / seconds from the first tick to the end of the flush);
- bare loop: the same producer settings (`publisher.kafka_sink.kafka_config`),
  keys, header and record size, the values serialized before the clock starts,
  produced with the cheapest call confluent-kafka offers, then flushed.
Each writes to a fresh topic created here with the publisher's defaults (6
partitions, the cluster's replication factor). Peak RSS is the child's
maximum resident set (wait4), so the parent's own memory never counts.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass

from bench.table import print_table

DEVICES = 10_000
TICKS = 50
ROUNDS = 5
SEED = 7
PARTITIONS = 6
SETTLE_SECONDS = 3.0


@dataclass(frozen=True)
class Run:
    rate: float  # readings delivered per second
    peak_rss_mib: float


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


def _run_child(command: list[str], env: dict[str, str], timeout: float = 300) -> tuple[str, str, float]:
    """Run to completion; stdout, stderr and the child's peak RSS in MiB (from wait4, so it is this child's)."""
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
                raise RuntimeError(f"{command[2]} did not finish within {timeout}s")
            time.sleep(0.05)
        child.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    if child.returncode != 0:
        raise RuntimeError(f"{command[2]} exited with {child.returncode}: {stderr.strip()[-2000:]}")
    return stdout, stderr, usage.ru_maxrss / 1024


def _publisher_run(bootstrap: str, topic: str) -> Run:
    command = [sys.executable, "-m", "publisher"]
    _, err, rss = _run_child(command, _environment(bootstrap, topic))
    for line in err.splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict) and "readings_per_s" in entry:
            if entry["delivered"] != DEVICES * TICKS:
                raise RuntimeError(f"publisher delivered {entry['delivered']} of {DEVICES * TICKS}")
            return Run(float(entry["readings_per_s"]), rss)
    raise RuntimeError("publisher printed no summary line")


def _bare_run(bootstrap: str, topic: str) -> Run:
    command = [sys.executable, "-m", "bench.publisher", "bare"]
    out, _, rss = _run_child(command, _environment(bootstrap, topic))
    return Run(float(json.loads(out)["rate"]), rss)


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
    start = time.monotonic()
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
    elapsed = time.monotonic() - start
    if left:
        raise SystemExit(f"bare loop: {left} records not delivered")
    print(json.dumps({"rate": DEVICES * TICKS / elapsed}))


def main(bootstrap: str) -> None:
    from shared.kafka import admin_client, ensure_topic  # noqa: PLC0415

    admin = admin_client(bootstrap, "bench-publisher")
    topics: list[str] = []
    rows: list[list[object]] = []
    ratios, publisher_rates, bare_rates, rss = [], [], [], []
    try:
        for round_number in range(1, ROUNDS + 1):
            runs = {}
            order = (("bare", _bare_run), ("publisher", _publisher_run))
            # The brokers are still replicating the first run when the second starts: alternate who goes
            # first, and let them settle in between, so neither side always pays for the other.
            for kind, run in order if round_number % 2 else order[::-1]:
                topic = f"bench-publisher-{kind}-{uuid.uuid4().hex[:8]}"
                topics.append(topic)
                ensure_topic(admin, topic, partitions=PARTITIONS)
                time.sleep(SETTLE_SECONDS)
                runs[kind] = run(bootstrap, topic)
            ratio = runs["publisher"].rate / runs["bare"].rate
            ratios.append(ratio)
            publisher_rates.append(runs["publisher"].rate)
            bare_rates.append(runs["bare"].rate)
            rss.append(runs["publisher"].peak_rss_mib)
            rows.append([
                f"round {round_number}", runs["publisher"].rate, runs["bare"].rate, ratio,
                runs["publisher"].peak_rss_mib, runs["bare"].peak_rss_mib,
            ])
    finally:
        if topics:
            admin.delete_topics(topics, operation_timeout=30)
    rows.append([
        "median", statistics.median(publisher_rates), statistics.median(bare_rates), statistics.median(ratios),
        statistics.median(rss), "",
    ])
    print_table(
        f"publisher: {DEVICES:,} devices, INTERVAL_MS=0, {DEVICES * TICKS:,} readings a run"
        " (targets: >= 100,000 readings/s and ratio >= 0.70)",
        ["run", "publisher readings/s", "bare loop readings/s", "ratio", "publisher peak RSS MiB", "bare peak RSS MiB"],
        rows,
    )


if __name__ == "__main__":
    if sys.argv[1:] == ["bare"]:
        bare_loop()
    else:
        main(os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092,127.0.0.1:9093"))
