"""The alerter's domain driven as the service drives it, in memory: for properties of the policy and the partitions.

`Run` feeds records of one readings partition through `Partitions` (judge,
sweep after every record, a notifier that delivers `pace` notifications per
record in order, the alerts topic as a list, restores when the domain asks
for them), and can stop at any record as a crash would: what was not
delivered is lost, and a new `Run` starts from the last committed offset with
the alerts topic read back. No clock, no Kafka, no sleep.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime

import msgspec

from alerter.assignment import RESTORE_MARGIN
from alerter.domain.notification import Detail, Kind, Notification, Recorded, Resolution, Result, Status
from alerter.domain.partition import Partition, Partitions
from alerter.domain.policy import AlertPolicy, event_time
from shared.models import TemperatureReading


@dataclass(frozen=True)
class Rec:
    """One record of the readings partition."""

    device: str
    temperature: float
    reading_time: float  # the device's clock
    record_time: float  # Kafka's timestamp
    now: float  # wall time at which the alerter reads it
    slowdown: float | None = None

    def reading(self) -> TemperatureReading:
        return TemperatureReading(
            device_id=self.device,
            temperature=self.temperature,
            timestamp=datetime.fromtimestamp(self.reading_time, UTC),
            host_name="node-1",
            slowdown_temperature=msgspec.UNSET if self.slowdown is None else self.slowdown,
        )


@dataclass(frozen=True)
class Sent:
    """A notification as the receiver got it."""

    kind: Kind
    device: str
    at: float
    offset: int  # of the record that raised it (for a window, its first record)
    detail: Detail

    @property
    def ends_silence(self) -> bool:
        return isinstance(self.detail, Resolution) and Kind.SILENT in self.detail.ends


@dataclass
class AlertsTopic:
    """The alerts topic: every delivered notification, in order."""

    records: list[tuple[str, Recorded]] = field(default_factory=list)

    def since(self, since: float) -> dict[str, tuple[Recorded, ...]]:
        found: dict[str, list[Recorded]] = {}
        for device, record in self.records:
            if record.at >= since:
                found.setdefault(device, []).append(record)
        return {device: tuple(records) for device, records in found.items()}


class Run:
    """One alerter instance's life on the partition: from `start` (a committed offset), until it stops or crashes."""

    def __init__(
        self,
        policy: AlertPolicy,
        topic: AlertsTopic,
        *,
        start: int = 0,
        now: float = 0.0,
        pace: int | None = None,
        max_devices: int = 1_000_000,
    ) -> None:
        self.policy = policy
        self.topic = topic
        self.partitions = Partitions(policy, max_devices)
        self.partition: Partition = self.partitions.assign(0)
        self.position = start
        self.pace = pace  # notifications delivered after each record (None: all at once)
        self.queue: deque[Notification] = deque()
        self.sent: list[Sent] = []
        self.committed = start
        self.restores = 0
        self._restore(now - policy.reach - 2 * policy.max_clock_skew - RESTORE_MARGIN)

    def feed(self, records: list[Rec], until: int | None = None, *, caught_up_at_end: bool = False) -> None:
        """Read records from the current position up to `until` (default: all)."""
        end = len(records) if until is None else until
        while self.position < end:
            offset = self.position
            record = records[offset]
            policy, partition = self.policy, self.partition
            at = event_time(record.reading_time, record.record_time, policy.max_clock_skew)
            if self.partitions.needs_restore(partition, at):
                self._restore(at - policy.reach - 2 * policy.max_clock_skew - RESTORE_MARGIN)
            _verdict, raised = self.partitions.judge(partition, record.reading(), offset, at, record.now)
            partition.offsets.advance(offset + 1)
            self.position += 1
            self.queue.extend(raised)
            caught_up = caught_up_at_end and self.position == len(records)
            self.queue.extend(self.partitions.sweep(partition, record.now, caught_up=caught_up, scan=True))
            if caught_up:  # and it stays so: the next sweeps
                self.queue.extend(self.partitions.sweep(partition, record.now + 60, caught_up=True, scan=True))
            self.deliver(self.pace)
            self.partitions.over_limit()

    def deliver(self, count: int | None = None) -> None:
        """The notifier posts `count` queued notifications (None: all), each recorded on the alerts topic."""
        while self.queue and (count is None or count > 0):
            notification = self.queue.popleft()
            partition = self.partitions.settle(Result(notification, Status.DELIVERED))
            detail = notification.detail
            ends = detail.ends if isinstance(detail, Resolution) else ()
            self.topic.records.append(
                (notification.alert.device_id, Recorded(notification.kind, notification.at, ends))
            )
            if partition is not None:
                Partitions.written(partition, notification.offset, release=True)
            self.sent.append(
                Sent(notification.kind, notification.alert.device_id, notification.at, notification.offset, detail)
            )
            if count is not None:
                count -= 1

    def commit(self) -> None:
        safe = self.partition.offsets.safe()
        if safe is not None:
            self.committed = safe

    def _restore(self, since: float) -> None:
        self.restores += 1
        self.partitions.restored(self.partition, self.topic.since(since), since)


def live(records: list[tuple[str, float, float]], lag: float = 0.0) -> list[Rec]:
    """(device, temperature, time) readings with honest clocks, read `lag` seconds after they were taken."""
    return [Rec(device, temperature, t, t, t + lag) for device, temperature, t in records]
