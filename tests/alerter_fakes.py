"""In-memory stand-ins for the alerter's edges, so the service loop runs in a unit test: no cluster, no HTTP, no sleep.

- FakeSource: the readings topic as per-partition lists; the test assigns and revokes partitions.
- FakeProducer: a topic log in memory; delivery reports come on `poll`, unless the test holds them back.
- FakeLogConsumer: reads the FakeProducer's log back, as the alerts-topic restore does.
- FakeNotifier: keeps what it was handed; the test decides each result.
- FakeClock: simulated time; polling the producer for t seconds moves it by t, so grace periods pass at once.

The real adapters (AlertsLog, DeadLetters) and the real domain run on top of them.
"""

from __future__ import annotations

import queue
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition

from alerter.adapters.alerts_log import AlertsLog
from alerter.adapters.dead_letters import DeadLetters
from alerter.adapters.readings import BATCH, Batch, SourceListener, scan
from alerter.adapters.rekeyed import Rekeyer
from alerter.domain.notification import Notification, Result, Status
from alerter.metrics import AlerterMetrics
from alerter.receiver import Sighting
from alerter.service import AlerterService, alert_policy
from alerter.settings import load_settings
from alerter.watch import ClusterWatch
from shared.codec import encode
from shared.config import Env
from shared.models import TemperatureReading

READINGS = "readings"
ALERTS = "alerts"
DLQ = "dlq"


class FakeClock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class FakeProducer:
    """Records land in `log[(topic, partition)]` when their delivery report is served (poll or flush)."""

    def __init__(self, clock: FakeClock) -> None:
        self._clock = clock
        self.log: dict[tuple[str, int], list[Message]] = {}
        self.queued: list[tuple[Message, Callable[[KafkaError | None, Message], None] | None]] = []
        self.hold = False  # True: poll serves nothing (the broker has not answered yet)
        self.fail: KafkaError | None = None  # the next delivery report carries this error
        self.refuse: KafkaError | None = None  # produce() raises KafkaException(refuse) while set
        self.while_polling: Callable[[], None] | None = None  # runs at every poll: things that happen meanwhile
        self.restores: list[float] = []  # where each read-back of the log started (epoch seconds asked for)

    def produce(  # noqa: PLR0917 - confluent_kafka.Producer.produce's own signature
        self,
        topic: str,
        value: bytes | None = None,
        key: bytes | None = None,
        partition: int = -1,
        on_delivery: Callable[[KafkaError | None, Message], None] | None = None,
        timestamp: int = 0,
        headers: list[tuple[str, Any]] | None = None,
    ) -> None:
        if self.refuse is not None:
            raise KafkaException(self.refuse)
        partition = max(partition, 0)
        stamp = timestamp or round(self._clock() * 1000)
        message = Message(
            topic=topic, partition=partition, key=key, value=value, headers=headers, timestamp=(1, stamp)
        )
        self.queued.append((message, on_delivery))

    def poll(self, timeout: float = 0) -> int:
        self._clock.advance(timeout)
        if self.while_polling is not None:
            self.while_polling()
        if self.hold:
            return 0
        served, self.queued = self.queued, []
        for queued, callback in served:
            error, self.fail = self.fail, None
            message = queued
            if error is None:
                records = self.log.setdefault((str(queued.topic()), queued.partition() or 0), [])
                message = _with_offset(queued, len(records))
                records.append(message)
            if callback is not None:
                callback(error, message)
        return len(served)

    def flush(self, timeout: float = 0) -> int:
        self.poll(0)
        return len(self.queued)

    def __len__(self) -> int:
        return len(self.queued)

    def records(self, topic: str) -> list[Message]:
        return [m for (t, _), messages in sorted(self.log.items()) if t == topic for m in messages]


class FakeLogConsumer:
    """Just enough of a consumer for AlertsLog.restore, over a FakeProducer's log."""

    def __init__(self, producer: FakeProducer) -> None:
        self._producer = producer
        self._assigned: TopicPartition | None = None

    def _records(self, topic: str, partition: int) -> list[Message]:
        return self._producer.log.get((topic, partition), [])

    def offsets_for_times(self, partitions: list[TopicPartition], timeout: float = 0) -> list[TopicPartition]:
        found = []
        for tp in partitions:
            self._producer.restores.append(tp.offset / 1000)
            records = self._records(tp.topic, tp.partition)
            offset = next((i for i, m in enumerate(records) if m.timestamp()[1] >= tp.offset), -1)
            found.append(TopicPartition(tp.topic, tp.partition, offset))
        return found

    def get_watermark_offsets(self, tp: TopicPartition, timeout: float = 0, cached: bool = False) -> tuple[int, int]:
        return 0, len(self._records(tp.topic, tp.partition))

    def assign(self, partitions: list[TopicPartition]) -> None:
        self._assigned = partitions[0]

    def consume(self, num_messages: int = 1, timeout: float = 0) -> list[Message]:
        tp, self._assigned = self._assigned, None  # everything in one go
        if tp is None:
            return []
        return self._records(tp.topic, tp.partition)[tp.offset :]

    def unassign(self) -> None:
        self._assigned = None

    def close(self) -> None:
        pass


def _with_offset(message: Message, offset: int) -> Message:
    """A copy of a message carrying its offset, as the broker assigns it."""
    return Message(
        topic=message.topic(),
        partition=message.partition(),
        offset=offset,
        key=message.key(),
        value=message.value(),
        headers=message.headers(),
        timestamp=message.timestamp(),
    )


@dataclass
class FakeSource:
    """The readings topic as lists; `assign`/`revoke` play the group coordinator, `poll` reads in order."""

    hot_above: float
    topic: str = READINGS
    paused: bool = False
    records: dict[int, list[Message]] = field(default_factory=dict)
    positions: dict[int, int] = field(default_factory=dict)  # owned partitions -> next offset to read
    commits: dict[int, int] = field(default_factory=dict)
    listener: SourceListener | None = None
    on_error: Callable[[KafkaError], None] | None = None
    closed: bool = False

    def add(
        self,
        partition: int,
        value: TemperatureReading | bytes | None,
        record_time: float | None = None,
        key: bytes | None = b"",
    ) -> int:
        """Append a record (a reading, keyed by its device unless `key` is given, or raw bytes); returns its offset."""
        records = self.records.setdefault(partition, [])
        if isinstance(value, TemperatureReading):
            key = value.device_id.encode() if key == b"" else key
            stamp = value.timestamp.timestamp() if record_time is None else record_time
            raw: bytes | None = encode(value)
        else:
            key, stamp, raw = b"raw" if key == b"" else key, record_time or 0.0, value
        offset = len(records)
        stamped = (1, round(stamp * 1000))
        message = Message(topic=self.topic, partition=partition, offset=offset, key=key, value=raw, timestamp=stamped)
        records.append(message)
        return offset

    def assign(self, partitions: list[int]) -> None:
        """The group hands these over, from their committed offsets (as a new owner reads them)."""
        assert self.listener is not None
        self.listener.assigned(partitions)
        for partition in partitions:
            self.positions[partition] = self.commits.get(partition, 0)

    def revoke(self, partitions: list[int]) -> None:
        assert self.listener is not None
        self.listener.revoked(partitions)
        for partition in partitions:
            self.positions.pop(partition, None)

    def lose(self, partitions: list[int]) -> None:
        assert self.listener is not None
        self.listener.lost(partitions)
        for partition in partitions:
            self.positions.pop(partition, None)

    # -- the Source interface --------------------------------------------------------------------

    def open(self, listener: SourceListener, on_error: Callable[[KafkaError], None]) -> None:
        self.listener, self.on_error = listener, on_error

    def poll(self) -> Batch | None:
        if self.paused:
            return None
        messages: list[Message] = []
        for partition, position in sorted(self.positions.items()):
            taken = self.records.get(partition, [])[position : position + BATCH - len(messages)]
            self.positions[partition] = position + len(taken)
            messages += taken
        return scan(messages, self.hot_above) if messages else None

    def commit(self, offsets: dict[int, int], *, asynchronous: bool) -> list[int]:
        self.commits.update(offsets)
        if asynchronous and self.listener is not None:
            self.listener.committed(None, [])
        return []

    def pause(self, partitions: list[int]) -> None:
        self.paused = True

    def resume(self, partitions: list[int]) -> None:
        self.paused = False

    def end_offset(self, partition: int) -> int | None:
        return len(self.records.get(partition, []))

    def reachable(self) -> bool:
        return True

    def close(self) -> None:
        if self.positions:
            self.revoke(sorted(self.positions))
        self.closed = True


class FakeNotifier:
    """Keeps what it was handed (`handed`); the test answers with `complete`, results go where the service reads."""

    def __init__(self, results: queue.SimpleQueue[Result], observing: bool = False) -> None:
        self._results = results
        self.observing = observing
        self.handed: list[Notification] = []
        self.completed: set[int] = set()
        self.sightings: list[Sighting] = []
        self.refusing = False
        self.cancelled: set[int] = set()
        self.posting: int | None = None  # what cancel() reports as under way
        self.running = False
        self.died = False

    def start(self) -> None:
        self.running = True

    def submit(self, notification: Notification) -> None:
        self.handed.append(notification)

    def observe(self, sightings: Sequence[Sighting]) -> None:
        self.sightings += sightings

    def accepting(self) -> bool:
        return not self.refusing

    def cancel(self, ids: Collection[int]) -> int | None:
        self.cancelled.update(ids)
        return self.posting if self.posting in self.cancelled else None

    def alive(self) -> bool:
        return not self.died

    def stop(self, timeout: float) -> None:
        self.running = False

    def complete(self, notification: Notification, status: Status = Status.DELIVERED, reason: str = "") -> None:
        self.completed.add(notification.id)
        self._results.put(Result(notification, status, reason))

    def complete_all(self) -> None:
        """Every notification handed over and not completed yet is delivered, in order."""
        for notification in self.handed:
            if notification.id not in self.completed:
                self.complete(notification)


@dataclass
class Rig:
    """A service on fakes, and the fakes, for one test."""

    service: AlerterService
    source: FakeSource
    producer: FakeProducer
    notifier: FakeNotifier
    clock: FakeClock
    metrics: AlerterMetrics
    watch: ClusterWatch

    def step(self, times: int = 1) -> None:
        for _ in range(times):
            self.service.step()

    def tick(self, seconds: float = 1.0) -> None:
        """Let time pass (past the commit interval), then one turn of the loop."""
        self.clock.advance(seconds)
        self.service.step()

    def metric(self, name: str, **labels: str) -> float:
        value = self.metrics.registry.get_sample_value(name, labels or None)
        return 0.0 if value is None else value


def rig(**env: str) -> Rig:
    """An AlerterService wired to fakes (as alerter.bootstrap.build wires the real edges), started."""
    return _rig(env, observing=False)


def observing_rig(**env: str) -> Rig:
    """A rig whose notifier wants sightings, as one with an Alertmanager receiver does."""
    return _rig(env, observing=True)


def _rig(env: dict[str, str], *, observing: bool) -> Rig:
    settings = load_settings(
        Env(
            {
                "SOURCE_TOPIC": READINGS,
                "ALERT_TOPIC": ALERTS,
                "DLQ_TOPIC": DLQ,
                "SLACK_WEBHOOK_URL": "https://hooks.slack.test/services/x",
                "TEMPERATURE_THRESHOLD": "150",
                "ALERT_COOLDOWN": "5m",
                "COMMIT_INTERVAL": "1s",
                **env,
            }
        )
    )
    clock = FakeClock()
    producer = FakeProducer(clock)
    results: queue.SimpleQueue[Result] = queue.SimpleQueue()
    notifier = FakeNotifier(results, observing)
    source = FakeSource(alert_policy(settings).watch_above)
    metrics = AlerterMetrics()
    watch = ClusterWatch(READINGS, monotonic=clock)
    kafka_producer = cast(Producer, producer)
    service = AlerterService(
        settings=settings,
        source=source,
        alerts_log=AlertsLog(kafka_producer, lambda: cast(Consumer, FakeLogConsumer(producer)), ALERTS, READINGS, 4),
        dead_letters=DeadLetters(kafka_producer, DLQ),
        rekeyer=Rekeyer(kafka_producer, READINGS),
        producer=producer,
        notifier=notifier,
        results=results,
        watch=watch,
        metrics=metrics,
        clock=clock,
        monotonic=clock,
    )
    service.start()
    return Rig(service, source, producer, notifier, clock, metrics, watch)
