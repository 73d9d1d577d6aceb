"""The dead-letter topic: records the alerter cannot read, and alerts a receiver refused for good.

A record lands there byte for byte (key, value, original headers) with headers
saying why and where it came from, so an operator can inspect, fix and replay
it. The offset of a dead-lettered record is committed only once the broker
acknowledged the copy (the caller's `on_done(None)` runs then). A failed copy
is produced again; should even that fail, `on_done(error)` says so and the
caller keeps the record uncommitted, to be read again after a restart.

Used only by the service's thread, which owns the producer and serves its
delivery reports.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Final

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from shared.codec import CONTENT_TYPE_HEADER, MAX_RECORD_BYTES, DecodeError, decode_reading
from shared.kafka import Headers, error_text, kafka_error, produce_until_acknowledged
from shared.logs import Throttle

log = logging.getLogger(__name__)

REASON: Final = "dlq-reason"  # the full reason, e.g. "invalid field: Expected `float`, got `str` - at `$.temperature`"
REASON_CODE: Final = "dlq-reason-code"  # one of REASON_CODES, also the metric label
KIND: Final = "dlq-kind"  # "record" (unreadable reading) or "alert" (undeliverable alert)
SOURCE_TOPIC: Final = "dlq-source-topic"
SOURCE_PARTITION: Final = "dlq-source-partition"
SOURCE_OFFSET: Final = "dlq-source-offset"
TRUNCATED_FROM: Final = "dlq-truncated-from"  # only on a value too large for the dead-letter topic: its size
REASON_CODES: Final = ("empty", "too_large", "malformed_json", "invalid_field")
_PREFIXES: Final = (("empty", "empty"), ("record too large", "too_large"), ("malformed", "malformed_json"))
_REASON_MAX = 500
_ANY_TIME: Final = datetime(2000, 1, 1, tzinfo=UTC)
_REFUSER: Final = re.compile(r"(?:^|; )([a-z]+) rejected the alert")
_KEEP = MAX_RECORD_BYTES

OnDone = Callable[[KafkaError | None], None]


def why_unreadable(value: bytes | None) -> DecodeError:
    """The codec's own verdict on a record the fast path could not decode (this path is rare). A missing
    timestamp is no reason (the record's own stands in for it), so any time stands in for it here."""
    try:
        decode_reading(value, _ANY_TIME)
    except DecodeError as error:
        return error
    return DecodeError("invalid field: rejected by the alerter")  # decodable here: cannot happen, but be explicit


def reason_code(error: DecodeError) -> str:
    for prefix, code in _PREFIXES:
        if error.reason.startswith(prefix):
            return code
    return "invalid_field"


def refusal_code(reason: str) -> str:
    """`slack_rejected`, `alertmanager_rejected`, or `rejected` when several receivers (or an unknown one) refused."""
    refusers = _REFUSER.findall(reason)
    return f"{refusers[0]}_rejected" if len(refusers) == 1 else "rejected"


class DeadLetters:
    def __init__(self, producer: Producer, topic: str) -> None:
        self._producer = producer
        self.topic = topic
        self._throttle = Throttle(30.0)

    def record(self, message: Message, error: DecodeError, on_done: OnDone) -> str:
        """Copy an unreadable record; returns its reason code."""
        code = reason_code(error)
        original = message.headers() or []
        headers: Headers = list(original.items() if isinstance(original, dict) else original)
        headers += [
            (KIND, b"record"),
            (REASON, error.reason[:_REASON_MAX].encode()),
            (REASON_CODE, code.encode()),
            *_source(str(message.topic()), message.partition(), message.offset()),
        ]
        self._produce(message.key(), message.value(), headers, on_done)
        return code

    def alert(self, key: bytes, value: bytes, reason: str, source: tuple[str, int, int], on_done: OnDone) -> None:
        """Park an alert a receiver refused (its AlertEvent JSON), so it is kept rather than lost. `reason` is the
        notifier's ("slack rejected the alert: HTTP 404 ..."); the code names the receiver that refused it."""
        headers: Headers = [
            CONTENT_TYPE_HEADER,
            (KIND, b"alert"),
            (REASON, reason[:_REASON_MAX].encode()),
            (REASON_CODE, refusal_code(reason).encode()),
            *_source(*source),
        ]
        self._produce(key, value, headers, on_done)

    def _produce(self, key: bytes | None, value: bytes | None, headers: Headers, on_done: OnDone) -> None:
        """Produce until the broker acknowledges: a failed copy is produced again (shortened if too large)."""

        def failed(error: KafkaError) -> None:
            if self._throttle.allow(f"dlq-{error.code()}") is not None:
                log.error("dead-letter copy to %s failed (%s); producing it again", self.topic, error_text(error))

        def adjust(error: KafkaError, value: bytes | None, headers: Headers) -> tuple[bytes | None, Headers]:
            return _truncated(value, headers) if error.code() == KafkaError.MSG_SIZE_TOO_LARGE else (value, headers)

        def send(value: bytes | None, headers: Headers) -> None:
            produce_until_acknowledged(
                self._producer, self.topic, value, key, headers=headers, on_done=on_done, on_failure=failed,
                adjust=adjust,
            )

        try:
            send(value, headers)
        except KafkaException as exc:
            error = kafka_error(exc)
            too_large = error is not None and error.code() == KafkaError.MSG_SIZE_TOO_LARGE
            if not too_large or value is None or len(value) <= _KEEP:
                raise
            send(*_truncated(value, headers))  # delivery reports see the truncated copy too


def _truncated(value: bytes | None, headers: Headers) -> tuple[bytes | None, Headers]:
    """Too large for the dead-letter topic: keep the head of the value and say how long it was."""
    if value is None or len(value) <= _KEEP:
        return value, headers
    return value[:_KEEP], [*headers, (TRUNCATED_FROM, str(len(value)).encode())]


def _source(topic: str, partition: int | None, offset: int | None) -> Headers:
    return [
        (SOURCE_TOPIC, topic.encode()),
        (SOURCE_PARTITION, str(partition).encode()),
        (SOURCE_OFFSET, str(offset).encode()),
    ]
