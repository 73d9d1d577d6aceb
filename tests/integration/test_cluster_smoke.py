"""The cluster the suite runs against is real, replicated and spread over two brokers."""

from __future__ import annotations

import time

import pytest
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient

from shared.kafka import consumer_config, ensure_topic, producer_config

pytestmark = pytest.mark.integration


def test_produce_and_consume_across_two_brokers(kafka_bootstrap: str, kafka_admin: AdminClient, unique: str) -> None:
    """A 2-partition, RF-2 topic has leaders on both brokers and returns every record produced."""
    brokers = kafka_admin.list_topics(timeout=10).brokers
    if len(brokers) < 2:
        pytest.skip("the configured cluster has a single broker")
    topic = f"smoke-{unique}"
    assert ensure_topic(kafka_admin, topic, partitions=2, replication_factor=2)
    assert not ensure_topic(kafka_admin, topic, partitions=2, replication_factor=2), "existing topic is left alone"

    partitions = kafka_admin.list_topics(topic=topic, timeout=10).topics[topic].partitions
    assert sorted(len(p.replicas) for p in partitions.values()) == [2, 2]
    assert {p.leader for p in partitions.values()} == set(brokers), "leaders sit on different brokers"

    producer = Producer(producer_config(kafka_bootstrap, "smoke-producer"))
    sent = {f"key-{i}".encode(): f"value-{i}".encode() for i in range(200)}
    for key, value in sent.items():
        producer.produce(topic, value=value, key=key)
    assert producer.flush(30) == 0

    consumer = Consumer(consumer_config(kafka_bootstrap, "smoke-consumer", f"smoke-{unique}", "earliest"))
    consumer.subscribe([topic])
    received: dict[bytes, bytes] = {}
    seen_partitions: set[int] = set()
    deadline = time.monotonic() + 60
    try:
        while len(received) < len(sent) and time.monotonic() < deadline:
            message = consumer.poll(1.0)
            if message is None or message.error():
                continue
            got_key, got_value, partition = message.key(), message.value(), message.partition()
            assert got_key is not None
            assert got_value is not None
            assert partition is not None
            received[got_key] = got_value
            seen_partitions.add(partition)
    finally:
        consumer.close()
    assert received == sent
    assert seen_partitions == {0, 1}
