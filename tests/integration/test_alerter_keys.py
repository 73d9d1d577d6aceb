"""A reading keyed by something other than its device_id is produced again keyed by it, on the real cluster: the
device is judged on one partition, so it alerts once per cooldown wherever its readings landed."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
from confluent_kafka import Producer

from alerter.adapters.rekeyed import REKEYED_FROM, REKEYED_KEY
from shared.codec import encode
from shared.kafka import producer_config
from slack_stand_in import SlackStandIn
from tests.alerter_support import (
    AlerterProcess,
    alerts_by_device,
    committed,
    end_offsets,
    read_all,
    reading,
    send_sentinels,
    wait_for_sentinels,
)
from tests.support import wait_until

pytestmark = pytest.mark.integration
PARTITIONS = 2


def test_a_misplaced_hot_reading_is_rekeyed_and_the_device_alerts_once(
    kafka_bootstrap: str,
    readings_topic: Callable[[int], str],
    slack: SlackStandIn,
    start_alerter: Callable[..., AlerterProcess],
) -> None:
    """gpu-k's readings: one keyed by itself (landing on its partition), one keyed by another device's id and one
    with no key, both written to the other partition. The two are copied to gpu-k's partition keyed by gpu-k, with
    headers saying where they came from; Slack gets one alert for gpu-k; every offset is committed."""
    topic = readings_topic(PARTITIONS)
    now = time.time()
    producer = Producer(producer_config(kafka_bootstrap, "tests-keys"))
    placed: dict[str, int] = {}

    def landed(name: str) -> Callable[[object, object], None]:
        return lambda error, message: placed.__setitem__(name, message.partition())  # type: ignore[attr-defined]

    producer.produce(topic, encode(reading("gpu-k", 201.0, now)), key=b"gpu-k", on_delivery=landed("own"))
    assert producer.flush(30) == 0
    other = 1 - placed["own"]
    producer.produce(topic, encode(reading("gpu-k", 202.0, now + 1)), key=b"gpu-x", partition=other)
    producer.produce(topic, encode(reading("gpu-k", 203.0, now + 2)), partition=other)
    assert producer.flush(30) == 0

    alerter = start_alerter()
    wait_for_sentinels(slack, send_sentinels(kafka_bootstrap, topic))

    def copies() -> list[tuple[int | None, bytes | None, object]]:
        found: list[tuple[int | None, bytes | None, object]] = [
            (m.partition(), m.key(), dict(m.headers() or []).get(REKEYED_KEY, "none"))
            for m in read_all(kafka_bootstrap, topic, 3 + 2 + PARTITIONS, timeout=5)
            if REKEYED_FROM in dict(m.headers() or [])
        ]
        return found if len(found) >= 2 else []

    rekeyed = wait_until(copies, 30, "the two copies on the readings topic")
    expected = [(placed["own"], b"gpu-k", b"gpu-x"), (placed["own"], b"gpu-k", "none")]
    assert sorted(rekeyed, key=repr) == sorted(expected, key=repr)
    wait_for_sentinels(slack, send_sentinels(kafka_bootstrap, topic))  # the copies were read before these
    assert [a["by_title"]["Device ID"] for a in alerts_by_device(slack.received).get("gpu-k", [])] == ["gpu-k"]
    assert alerter.metric("gpu_alerter_readings_rekeyed_total") == 2
    assert alerter.stop() == 0
    group = alerter.env["CONSUMER_GROUP"]
    assert committed(kafka_bootstrap, group, topic, PARTITIONS) == end_offsets(kafka_bootstrap, topic, PARTITIONS)
