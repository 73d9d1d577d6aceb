"""The readings topic, read in a consumer group: batches in, commits, pauses and rebalances out.

`poll` returns a `Batch`: the records decoded and sorted into what the
service needs (hot readings, unreadable records, how far each partition
got). Decoding happens here because it is the per-record cost that bounds
throughput: one msgspec decode, one length check and one comparison per
record; everything else is per batch. A reading the strict decode refuses is
read again as Go's encoding/json would (shared.codec.decode_lenient: keys in
any case, a missing timestamp taken from the record), on that record only. Rebalance, error and commit callbacks
run inside `poll` (and `close`), on the thread that calls it, and go to what
`open` was given.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final, Protocol

import msgspec
from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition

from alerter.domain.timestamps import record_time
from shared.codec import MAX_RECORD_BYTES, DecodeError, decode_lenient
from shared.models import TemperatureReading

BATCH: Final = 2000  # records per consume() call
IDLE_WAIT: Final = 0.02  # seconds consume() may block when nothing is buffered: also how long a result may wait


class SourceListener(Protocol):
    """What the consumer group tells the service, from inside `poll` (and `close`)."""

    def assigned(self, partitions: list[int]) -> None: ...
    def revoked(self, partitions: list[int]) -> None: ...
    def lost(self, partitions: list[int]) -> None: ...
    def committed(self, error: KafkaError | None, failed: list[int]) -> None: ...


class Source(Protocol):
    """What the service needs from a readings source (ReadingsSource; tests use an in-memory one)."""

    topic: str
    paused: bool

    def open(self, listener: SourceListener, on_error: Callable[[KafkaError], None]) -> None: ...
    def poll(self) -> Batch | None: ...
    def commit(self, offsets: dict[int, int], *, asynchronous: bool) -> list[int]: ...
    def pause(self, partitions: list[int]) -> None: ...
    def resume(self, partitions: list[int]) -> None: ...
    def end_offset(self, partition: int) -> int | None: ...
    def reachable(self) -> bool: ...
    def close(self) -> None: ...


@dataclass(slots=True)
class Batch:
    """One consume() call's worth of records, sorted for the service."""

    records: int = 0  # records read, good and bad (consumer events are not records)
    ends: dict[int, int] = field(default_factory=dict)  # partition -> offset after its last readable record
    hot: list[tuple[Message, TemperatureReading]] = field(default_factory=list)  # above the threshold
    bad: list[Message] = field(default_factory=list)  # unreadable records, to be dead-lettered
    errors: list[KafkaError] = field(default_factory=list)  # consumer events that came as messages


_decode = msgspec.json.Decoder(TemperatureReading).decode


def scan(messages: list[Message], hot_above: float, clock: Callable[[], float] = time.time) -> Batch:
    """Decode and sort a batch: the per-record hot path, kept to a decode, a comparison and a dict store."""
    last: dict[int | None, Message] = {}
    hot: list[tuple[Message, TemperatureReading]] = []
    bad: list[Message] = []
    errors: list[KafkaError] = []
    decode = _decode
    limit = MAX_RECORD_BYTES
    for message in messages:
        value = message.value()
        try:  # no value (None) raises TypeError; invalid UTF-8 a ValueError; deep nesting a RecursionError
            reading = decode(value) if len(value) <= limit else None  # type: ignore[arg-type]
        except msgspec.ValidationError:  # JSON with a field problem: perhaps what Go would still read
            reading = _lenient(message, value, clock)  # type: ignore[arg-type]
        except (TypeError, ValueError, RecursionError):
            reading = None
        if reading is None:
            error = message.error()
            if error is None:
                bad.append(message)
            else:
                errors.append(error)
            continue
        last[message.partition()] = message
        if reading.temperature > hot_above:
            hot.append((message, reading))
    ends = {partition: message.offset() + 1 for partition, message in last.items()}  # type: ignore[operator]
    return Batch(len(messages) - len(errors), ends, hot, bad, errors)  # type: ignore[arg-type]


def _lenient(message: Message, value: bytes, clock: Callable[[], float]) -> TemperatureReading | None:
    """The slow path: keys in any case, a missing timestamp from the record (its arrival if that is unusable)."""
    kind, millis = message.timestamp()
    stamped = datetime.fromtimestamp(record_time(kind, millis, clock()), UTC)
    try:
        return decode_lenient(value, stamped)
    except DecodeError:
        return None


class ReadingsSource:
    """The consumer of the readings topic; created by `open`, used by one thread only."""

    def __init__(
        self,
        config: dict[str, Any],
        topic: str,
        hot_above: float,
        consumer_factory: Callable[[dict[str, Any]], Consumer] = Consumer,
    ) -> None:
        self.topic = topic
        self._config = config
        self._hot_above = hot_above
        self._factory = consumer_factory
        self._consumer: Consumer | None = None
        self.paused = False

    def open(self, listener: SourceListener, on_error: Callable[[KafkaError], None]) -> None:
        """Create the consumer and subscribe; `listener` hears of rebalances and commit results, `on_error` of
        client errors (librdkafka's error_cb)."""

        def on_assign(consumer: Consumer, partitions: list[TopicPartition]) -> None:
            mine = [tp for tp in partitions if tp.topic == self.topic]
            listener.assigned([tp.partition for tp in mine])  # restores cooldowns before the first record
            consumer.incremental_assign(partitions)
            if self.paused and mine:
                consumer.pause(mine)

        def on_revoke(_consumer: Consumer, partitions: list[TopicPartition]) -> None:
            listener.revoked([tp.partition for tp in partitions if tp.topic == self.topic])

        def on_lost(_consumer: Consumer, partitions: list[TopicPartition]) -> None:
            listener.lost([tp.partition for tp in partitions if tp.topic == self.topic])

        def on_commit(error: KafkaError | None, partitions: list[TopicPartition]) -> None:
            failed = [tp.partition for tp in partitions if error is not None or tp.error is not None]
            listener.committed(error, failed)

        self._consumer = self._factory({**self._config, "error_cb": on_error, "on_commit": on_commit})
        self._consumer.subscribe([self.topic], on_assign=on_assign, on_revoke=on_revoke, on_lost=on_lost)

    def poll(self) -> Batch | None:
        """The records buffered now, or those of the next IDLE_WAIT seconds; None when nothing came."""
        consumer = self._live()
        messages = consumer.consume(BATCH, 0) or consumer.consume(1, IDLE_WAIT)
        return scan(messages, self._hot_above) if messages else None

    def commit(self, offsets: dict[int, int], *, asynchronous: bool) -> list[int]:
        """Commit partition -> offset. Asynchronously, the listener hears how it went; synchronously, returns
        the partitions the broker refused. Raises KafkaException when the commit as a whole failed."""
        positions = [TopicPartition(self.topic, partition, offset) for partition, offset in offsets.items()]
        if asynchronous:
            self._live().commit(offsets=positions, asynchronous=True)
            return []
        answered = self._live().commit(offsets=positions, asynchronous=False)
        return [tp.partition for tp in answered if tp.error is not None]

    def pause(self, partitions: list[int]) -> None:
        """Stop fetching (records already fetched are not returned either) until `resume`; new partitions too."""
        self._live().pause([TopicPartition(self.topic, p) for p in partitions])
        self.paused = True

    def resume(self, partitions: list[int]) -> None:
        self._live().resume([TopicPartition(self.topic, p) for p in partitions])
        self.paused = False

    def end_offset(self, partition: int) -> int | None:
        """The partition's high watermark as last fetched (no request), or None when not known."""
        try:
            _low, high = self._live().get_watermark_offsets(TopicPartition(self.topic, partition), cached=True)
        except KafkaException:
            return None
        return high if high >= 0 else None

    def reachable(self) -> bool:
        """Whether the cluster answers a metadata request now (during an outage nothing else may say so)."""
        try:
            self._live().list_topics(self.topic, timeout=1.0)
        except KafkaException:
            return False
        return True

    def close(self) -> None:
        """Leave the group (the revoke callback runs once more, inside this call)."""
        if self._consumer is not None:
            self._consumer.close()

    def _live(self) -> Consumer:
        if self._consumer is None:
            raise RuntimeError("ReadingsSource used before open()")
        return self._consumer
