"""The shared Kafka helpers: one line per error, and producing through a full local queue."""

from __future__ import annotations

from typing import Any, cast

import pytest
from confluent_kafka import KafkaError, KafkaException, Producer

from shared.kafka import QUEUE_FULL_WAIT, error_text, kafka_error, produce


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
