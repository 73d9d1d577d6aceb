"""The local topology really tolerates the loss of either broker."""

from __future__ import annotations

import time

import pytest
from confluent_kafka import Consumer, Producer

from shared.kafka import admin_client, consumer_config, ensure_topic, producer_config
from tests.support import PrivateCluster

pytestmark = [pytest.mark.integration, pytest.mark.fault]


@pytest.mark.parametrize("victim", ["broker-1", "broker-2"])
def test_either_broker_can_die_and_the_other_serves(healthy_cluster: PrivateCluster, victim: str, unique: str) -> None:
    """With one broker SIGKILLed, acks=all writes and reads of an RF-2 topic go on through the survivor."""
    bootstrap = healthy_cluster.bootstrap
    admin = admin_client(bootstrap, "fault-admin")
    topic = f"failover-{victim}-{unique}"
    ensure_topic(admin, topic, partitions=2, replication_factor=2)

    healthy_cluster.kill(victim)
    producer = Producer(producer_config(bootstrap, "fault-producer", **{"message.timeout.ms": 60_000}))
    errors: list[str] = []
    for i in range(500):
        producer.produce(
            topic, key=f"d{i % 10}".encode(), value=str(i).encode(),
            on_delivery=lambda err, _msg: errors.append(str(err)) if err else None,
        )
    assert producer.flush(60) == 0
    assert errors == []

    consumer = Consumer(consumer_config(bootstrap, "fault-consumer", f"g-{unique}", "earliest"))
    consumer.subscribe([topic])
    got = 0
    deadline = time.monotonic() + 60
    try:
        while got < 500 and time.monotonic() < deadline:
            batch = consumer.consume(500, 1.0)
            got += sum(1 for m in batch if m.error() is None)
    finally:
        consumer.close()
    assert got == 500
