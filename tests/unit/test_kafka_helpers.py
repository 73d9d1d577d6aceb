"""The shared Kafka helpers: one line per error, and producing through a full local queue."""

from __future__ import annotations

from concurrent.futures import Future
from types import SimpleNamespace
from typing import Any, cast

import pytest
from confluent_kafka import KafkaError, KafkaException, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from shared.kafka import (
    QUEUE_FULL_WAIT,
    REGISTRATION_RETRY,
    REGISTRATION_WAIT,
    broker_count,
    ensure_topic,
    error_text,
    kafka_error,
    partition_count,
    produce,
)


def test_error_text_is_librdkafkas_own_line_for_kafka_errors_and_type_and_message_otherwise() -> None:
    """A KafkaError, or a KafkaException carrying one, reads as librdkafka's text (with name and fatality on
    request); any other exception as its type and message."""
    error = KafkaError(KafkaError._FENCED, "fenced by a newer instance", fatal=True)
    assert error_text(error) == "fenced by a newer instance"
    assert error_text(KafkaException(error)) == "fenced by a newer instance"
    assert error_text(KafkaException(error), detail=True) == "fenced by a newer instance (_FENCED, fatal)"
    assert error_text(ValueError("bad")) == "ValueError: bad"
    assert kafka_error(KafkaException(error)) is error
    assert kafka_error(KafkaException("no error inside")) is None


class FullQueue:
    """A producer whose local queue is full for the first `full` tries."""

    def __init__(self, full: int) -> None:
        self.full = full
        self.polls: list[float] = []
        self.produced: list[tuple[Any, ...]] = []

    def produce(self, *args: Any, **kwargs: Any) -> None:
        if self.full:
            self.full -= 1
            raise BufferError("Local: Queue full")
        self.produced.append((*args, kwargs))

    def poll(self, timeout: float) -> int:
        self.polls.append(timeout)
        return 0


def test_produce_serves_a_full_queue_and_tries_the_same_record_again() -> None:
    """Each BufferError is met by serving delivery reports, then the same record is produced, once."""
    producer = FullQueue(full=3)
    produce(cast(Producer, producer), "t", b"v", b"k", partition=2, headers=[("h", b"1")])
    assert producer.polls == [QUEUE_FULL_WAIT] * 3
    assert len(producer.produced) == 1
    assert producer.produced[0][:3] == ("t", b"v", b"k")
    assert producer.produced[0][3]["partition"] == 2


def test_produce_leaves_other_errors_to_the_caller() -> None:
    """A refusal other than a full queue (too large, say) is raised as it is."""

    class Refusing(FullQueue):
        def produce(self, *args: Any, **kwargs: Any) -> None:
            raise KafkaException(KafkaError(KafkaError.MSG_SIZE_TOO_LARGE))

    with pytest.raises(KafkaException, match="too large"):
        produce(cast(Producer, Refusing(0)), "t", b"v")


class Registering:
    """An admin API of a cluster that has registered `brokers` so far; each creation attempt registers one more.

    Creation is refused with INVALID_REPLICATION_FACTOR while fewer brokers are registered than the replication
    factor asks, as a freshly started KRaft cluster refuses it.
    """

    def __init__(self, brokers: int, registers: bool = True) -> None:
        self.brokers, self.registers, self.attempts = brokers, registers, 0
        self.created: dict[str, int] = {}

    def list_topics(self, topic: str | None = None, timeout: float = 0) -> Any:
        partitions = {p: SimpleNamespace(leader=1) for p in range(self.created.get(topic or "", 0))}
        topics = {name: SimpleNamespace(error=None, partitions=partitions) for name in self.created}
        return SimpleNamespace(brokers=dict.fromkeys(range(self.brokers)), topics=topics)

    def create_topics(self, topics: list[NewTopic], **_: float) -> dict[str, Future[None]]:
        self.attempts += 1
        (topic,) = topics
        future: Future[None] = Future()
        if topic.replication_factor > self.brokers:
            future.set_exception(KafkaException(KafkaError(KafkaError.INVALID_REPLICATION_FACTOR, "too few brokers")))
        else:
            self.created[topic.topic] = topic.num_partitions
            future.set_result(None)
        self.brokers += self.registers
        return {topic.topic: future}


def test_topic_creation_waits_for_the_brokers_a_starting_cluster_has_not_registered_yet() -> None:
    """Refused for too few brokers while fewer are registered than the services were given: tried again (one
    sleep between tries) until the brokers are there."""
    admin, sleeps = Registering(brokers=0), list[float]()
    created = ensure_topic(
        cast(AdminClient, admin), "t", partitions=3, replication_factor=2, expected_brokers=2, sleep=sleeps.append
    )
    assert created
    assert admin.created == {"t": 3}
    assert admin.attempts == 3
    assert sleeps == [REGISTRATION_RETRY] * 2


@pytest.mark.parametrize(("brokers", "expected"), [(2, 2), (2, 0), (0, 2)])
def test_topic_creation_refused_for_too_few_brokers_is_final_when_no_more_are_coming(
    brokers: int, expected: int
) -> None:
    """As many brokers as the bootstrap list names (or no list): the refusal is the answer at once. Past the
    registration wait, it is the answer too."""
    admin = Registering(brokers=brokers, registers=False)
    wait = 0.0 if brokers < expected else REGISTRATION_WAIT
    with pytest.raises(KafkaException, match="too few brokers"):
        ensure_topic(
            cast(AdminClient, admin), "t", partitions=1, replication_factor=9, expected_brokers=expected,
            registration_wait=wait, sleep=lambda _: None,
        )
    assert admin.attempts == 1


def test_broker_count_is_the_number_of_addresses_in_the_bootstrap_list() -> None:
    assert broker_count("127.0.0.1:9092,127.0.0.1:9093") == 2
    assert broker_count("redpanda-0:9092, redpanda-1:9092,") == 2
    assert broker_count("kafka:9092") == 1


class Lagging:
    """Metadata answers from brokers that learn of topic `t` (3 partitions) only after `stale` answers."""

    def __init__(self, stale: int) -> None:
        self.stale, self.answers = stale, 0

    def list_topics(self, topic: str | None = None, timeout: float = 0) -> Any:
        self.answers += 1
        known = self.answers > self.stale
        partitions = {p: SimpleNamespace(leader=1) for p in range(3)} if known else {}
        return SimpleNamespace(topics={"t": SimpleNamespace(error=None, partitions=partitions)} if known else {})


def test_partition_count_asks_again_when_a_broker_has_not_learned_of_the_topic_yet() -> None:
    """A just-created topic missing from one broker's answer is not missing: asked again until one reports it."""
    admin = Lagging(stale=2)
    assert partition_count(cast(AdminClient, admin), "t") == 3
    assert admin.answers == 3


def test_partition_count_is_none_when_no_broker_reports_the_topic_in_time() -> None:
    assert partition_count(cast(AdminClient, Lagging(stale=10**9)), "t", timeout=0.3) is None
