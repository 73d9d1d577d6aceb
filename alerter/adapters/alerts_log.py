"""The alerts topic: delivered alerts are recorded there and read back, so cooldowns survive restarts and rebalances.

Every delivered notification is produced as an AlertEvent with one more
field, `kind` (critical, warning, forecast, resolved, silent), keyed by
device, with its event time as its Kafka timestamp and headers naming the
readings partition it came from; a resolved one also says what it ended in a
`resolves` header (`critical,warning,forecast`, or `silent` for a device that
reports again). Records without `kind` (older alerters) read back as critical.
It goes to alerts partition `p % N` (readings
partition p, N alerts partitions): with the same partition count on both
topics (what the alerter creates) that is partition p itself, so the
instance that takes over readings partition p reads exactly one alerts
partition, from `offsets_for_times(since)` to its end, where `since` is a
cooldown (plus clock skew and a margin) before the oldest reading it may
decide on. With fewer alerts partitions several readings partitions share
one and the headers tell them apart; with more, the extra ones stay empty.
A device moves to another readings partition only when that topic's
partition count changes: its next alert may then repeat within cooldown.

A record there that cannot be read (anyone may produce to the topic) is
skipped and handed to the restore's `on_unreadable` once per process, for
the dead-letter topic; a restore reads on past it.

Both the producer and the restore consumer are used only by the service's
thread, which owns every Kafka client.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable
from typing import Final

import msgspec
from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition

from alerter.domain.notification import Kind, Recorded
from shared.backoff import backoff
from shared.codec import CONTENT_TYPE_HEADER, DecodeError, decode_alert, encode
from shared.kafka import Headers, error_text, produce
from shared.models import AlertEvent

SOURCE_TOPIC_HEADER: Final = "source-topic"
SOURCE_PARTITION_HEADER: Final = "source-partition"
RESOLVES_HEADER: Final = "resolves"
MAX_REPORTED: Final = 100_000  # unreadable records remembered as reported; beyond, the oldest may be reported again


class RecordedAlert(AlertEvent, frozen=True):
    """The record of a delivered notification: the AlertEvent, then its kind."""

    kind: str = Kind.CRITICAL.value


class _KindOnly(msgspec.Struct):
    kind: str = Kind.CRITICAL.value


_kind_decoder = msgspec.json.Decoder(_KindOnly)
_KINDS: Final = {kind.value: kind for kind in Kind}

OnDone = Callable[[KafkaError | None], None]
OnUnreadable = Callable[[Message, DecodeError], None]


def _ignore(_message: Message, _error: DecodeError) -> None:
    pass


class RestoreError(RuntimeError):
    """The alerts topic could not be read back in time; the caller decides without restored cooldowns."""


class AlertsLog:
    def __init__(
        self,
        producer: Producer,
        restore_consumer: Callable[[], Consumer],
        topic: str,
        source_topic: str,
        partitions: int,
    ) -> None:
        self._producer = producer
        self._new_consumer = restore_consumer
        self._consumer: Consumer | None = None
        self.topic = topic
        self._source_topic = source_topic
        self._source_header = source_topic.encode()
        self.partitions = max(1, partitions)
        self._reported: dict[tuple[int, int], None] = {}  # (alerts partition, offset) of unreadable records seen

    def alert_partition(self, source_partition: int) -> int:
        return source_partition % self.partitions

    def record(
        self,
        alert: AlertEvent,
        at: float,
        source_partition: int,
        on_done: OnDone,
        *,
        kind: Kind = Kind.CRITICAL,
        ends: tuple[Kind, ...] = (),
    ) -> None:
        """Produce a delivered notification; `on_done(error)` runs once the broker answered. Raises KafkaException
        when librdkafka refuses the record outright (too large, say)."""

        def delivered(error: KafkaError | None, _message: Message) -> None:
            on_done(error)

        headers: Headers = [
            CONTENT_TYPE_HEADER,
            (SOURCE_TOPIC_HEADER, self._source_header),
            (SOURCE_PARTITION_HEADER, str(source_partition).encode()),
        ]
        if ends:
            headers.append((RESOLVES_HEADER, ",".join(k.value for k in ends).encode()))
        produce(
            self._producer,
            self.topic,
            encode_record(alert, kind),
            alert.device_id.encode(),
            partition=self.alert_partition(source_partition),
            timestamp=round(at * 1000),
            headers=headers,
            on_delivery=delivered,
        )

    def restore(
        self, source_partition: int, since: float, timeout: float, on_unreadable: OnUnreadable = _ignore
    ) -> dict[str, tuple[Recorded, ...]]:
        """The notifications delivered since `since` for the devices of one readings partition.

        Right after a broker failover the first answers can be stale (leader
        moved, epoch fenced): each failure is retried with a fresh client until
        `timeout`, then RestoreError says why. An unreadable record is skipped;
        `on_unreadable` hears of it the first time this process meets it.
        """
        deadline = time.monotonic() + timeout
        failures = 0
        while True:
            try:
                return self._restore_once(source_partition, since, deadline, on_unreadable)
            except RestoreError:
                self.close()  # the next try starts with fresh metadata
                failures += 1
                delay = backoff(failures, initial=0.2, maximum=2.0)
                if time.monotonic() + delay >= deadline:
                    raise
                time.sleep(delay)

    def _restore_once(
        self, source_partition: int, since: float, deadline: float, on_unreadable: OnUnreadable
    ) -> dict[str, tuple[Recorded, ...]]:
        alert_partition = self.alert_partition(source_partition)
        wanted_partition = str(source_partition).encode()
        times: dict[str, list[Recorded]] = defaultdict(list)
        try:
            consumer = self._consumer or self._new_consumer()  # creating it can fail too (a KafkaException)
            self._consumer = consumer
            start = consumer.offsets_for_times(
                [TopicPartition(self.topic, alert_partition, max(0, round(since * 1000)))], timeout=_left(deadline, 5)
            )[0]
            if start.error is not None:
                raise RestoreError(f"cannot look up offsets of {self.topic}: {error_text(start.error)}")
            _low, high = consumer.get_watermark_offsets(
                TopicPartition(self.topic, alert_partition), timeout=_left(deadline, 5)
            )
            if start.offset < 0 or start.offset >= high:
                return {}
            consumer.assign([TopicPartition(self.topic, alert_partition, start.offset)])
            try:
                position = start.offset
                while position < high:
                    if time.monotonic() >= deadline:
                        raise RestoreError(f"reading {self.topic}[{alert_partition}] back did not finish in time")
                    for message in consumer.consume(1000, _left(deadline, 0.5)):
                        if message.error() is not None:
                            continue
                        position = max(position, (message.offset() or 0) + 1)
                        self._collect(message, wanted_partition, times, on_unreadable)
            finally:
                consumer.unassign()
        except KafkaException as exc:
            raise RestoreError(f"cannot read {self.topic} back: {error_text(exc)}") from exc
        return {device: tuple(ts) for device, ts in times.items()}

    def _collect(
        self, message: Message, wanted_partition: bytes, times: dict[str, list[Recorded]], on_unreadable: OnUnreadable
    ) -> None:
        headers = dict(message.headers() or [])
        topic, partition = headers.get(SOURCE_TOPIC_HEADER), headers.get(SOURCE_PARTITION_HEADER)
        if (topic is not None and topic != self._source_header) or (
            partition is not None and partition != wanted_partition
        ):
            return
        try:
            alert = decode_alert(message.value())
        except DecodeError as error:
            where = (message.partition() or 0, message.offset() or 0)
            if where not in self._reported:
                if len(self._reported) >= MAX_REPORTED:
                    del self._reported[next(iter(self._reported))]
                self._reported[where] = None
                on_unreadable(message, error)
            return
        stamp, millis = message.timestamp()
        at = millis / 1000 if stamp and millis >= 0 else alert.timestamp.timestamp()
        resolves = headers.get(RESOLVES_HEADER)
        kind, ends = kind_of(message.value(), resolves if isinstance(resolves, bytes) else None)
        times[alert.device_id].append(Recorded(kind, at, ends, alert.temperature))

    def close(self) -> None:
        if self._consumer is not None:
            self._consumer.close()
            self._consumer = None


def encode_record(alert: AlertEvent, kind: Kind) -> bytes:
    """The alerts topic's record of a delivered notification: the AlertEvent's fields, then `kind`."""
    return encode(RecordedAlert(**msgspec.structs.asdict(alert), kind=kind.value))


def kind_of(value: bytes | None, resolves: bytes | None) -> tuple[Kind, tuple[Kind, ...]]:
    """A record's kind (critical when missing or unknown) and, for a resolved one, what it ended."""
    try:
        kind = _KINDS.get(_kind_decoder.decode(value or b"{}").kind, Kind.CRITICAL)
    except (msgspec.DecodeError, ValueError, RecursionError):
        kind = Kind.CRITICAL
    if kind is not Kind.RESOLVED or resolves is None:
        return kind, ()
    ends = tuple(_KINDS[name] for name in resolves.decode("ascii", "replace").split(",") if name in _KINDS)
    return kind, ends


def _left(deadline: float, at_most: float) -> float:
    return max(0.01, min(at_most, deadline - time.monotonic()))
