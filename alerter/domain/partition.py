"""The partitions an instance owns: offsets, device state and undelivered notifications, as one pure aggregate.

`Partitions` turns hot readings into notifications (through the policy),
applies the notifier's results, and knows, per partition, what must be
finished before the offset may pass a record. It does no I/O: the service
carries out what it returns (hand a notification over, record a delivered
alert, park a refused one) and reports back when a write was acknowledged.

A partition that moves away leaves its delivered cooldowns behind (`retired`),
in case it comes back before the alerts topic can be read back, and a result
that arrives for a partition no longer owned is *stale*: a delivery among them
still counts as a cooldown.
"""

from __future__ import annotations

import itertools
import math

from alerter.domain.notification import Kind, Notification, Result, Status
from alerter.domain.offsets import Offsets
from alerter.domain.policy import EMPTY, AlertPolicy, DeviceState, Verdict
from shared.models import AlertEvent, TemperatureReading


class Partition:
    """One owned readings partition."""

    __slots__ = ("devices", "number", "offsets", "outstanding", "restored_since", "writes")

    def __init__(self, number: int, devices: dict[str, DeviceState] | None = None) -> None:
        self.number = number
        self.offsets = Offsets()
        self.devices: dict[str, DeviceState] = devices or {}  # per device of this partition; may be pruned
        self.outstanding: dict[int, Notification] = {}  # handed to the notifier, no result yet
        self.writes = 0  # records produced for it (alerts topic, dead letters) not yet acknowledged
        self.restored_since = math.inf  # delivered alerts at or after this event time are in `devices`

    def busy(self) -> bool:
        """Work under way that a hand-over would cut short."""
        return bool(self.outstanding) or self.writes > 0


class Partitions:
    def __init__(self, policy: AlertPolicy) -> None:
        self.policy = policy
        self.owned: dict[int, Partition] = {}
        self.retired: dict[int, dict[str, DeviceState]] = {}  # delivered cooldowns of partitions given away
        self.pending = 0  # notifications outstanding, all partitions
        self._ids = itertools.count()

    # -- ownership -------------------------------------------------------------------------------

    def assign(self, number: int) -> Partition:
        """Take a partition on (one already owned stays as it is), with the cooldowns it left behind."""
        if number not in self.owned:
            self.owned[number] = Partition(number, self.retired.pop(number, None))
        return self.owned[number]

    def drop(self, number: int) -> Partition | None:
        """Give a partition up; its outstanding notifications are the new owner's to raise again."""
        partition = self.owned.pop(number, None)
        if partition is None:
            return None
        delivered = {device: DeviceState(s.delivered) for device, s in partition.devices.items() if s.delivered}
        if delivered:
            self.retired[number] = delivered
        self.pending -= len(partition.outstanding)
        return partition

    def restored(self, partition: Partition, found: dict[str, tuple[float, ...]], since: float) -> None:
        """Alerts delivered since `since`, read back from the alerts topic, join the device states."""
        for device, times in found.items():
            partition.devices[device] = self.policy.restored(partition.devices.get(device, EMPTY), times)
        partition.restored_since = since

    # -- decisions -------------------------------------------------------------------------------

    def decide(
        self, partition: Partition, reading: TemperatureReading, offset: int, at: float
    ) -> tuple[Verdict, Notification | None]:
        """The policy's verdict on a hot reading; an ALERT comes with its notification, its record now held."""
        device = reading.device_id
        verdict, state = self.policy.decide(reading.temperature, at, partition.devices.get(device, EMPTY))
        if verdict is not Verdict.ALERT:
            return verdict, None
        partition.devices[device] = state
        alert = AlertEvent.from_reading(reading, self.policy.threshold)
        notification = Notification(next(self._ids), Kind.ALERT, alert, partition.number, offset, at)
        partition.offsets.hold(offset)
        partition.outstanding[notification.id] = notification
        self.pending += 1
        return verdict, notification

    def settle(self, result: Result) -> Partition | None:
        """Apply a notifier result; returns its partition, or None when the result is stale.

        For a DELIVERED or REJECTED one a write must follow (record it on the alerts topic, park it on the
        dead-letter topic), already counted in the partition's `writes`; report its end with `written`. A
        FAILED or ABANDONED one keeps its record held: the commit stops there and it is read again after a
        restart.
        """
        notification = result.notification
        partition = self.owned.get(notification.partition)
        if partition is None or partition.outstanding.pop(notification.id, None) is None:
            if result.status is Status.DELIVERED:
                self._remember(notification)
            return None
        self.pending -= 1
        device = notification.alert.device_id
        state = partition.devices.get(device, EMPTY)
        if result.status in (Status.DELIVERED, Status.REJECTED):  # a refused alert keeps its cooldown too
            partition.devices[device] = self.policy.delivered(state, notification.at)
        else:
            partition.devices[device] = self.policy.abandoned(state, notification.at)
        if result.status in (Status.DELIVERED, Status.REJECTED):
            partition.writes += 1
        return partition

    def _remember(self, notification: Notification) -> None:
        """A delivery for a partition we no longer own (or own anew): still a cooldown we know of."""
        current = self.owned.get(notification.partition)
        states = current.devices if current is not None else self.retired.setdefault(notification.partition, {})
        device = notification.alert.device_id
        states[device] = self.policy.delivered(states.get(device, EMPTY), notification.at)

    # -- writes (dead letters, alerts topic) ------------------------------------------------------

    @staticmethod
    def writing(partition: Partition, offset: int) -> None:
        """A record's copy is on its way to the dead-letter topic: hold it until acknowledged."""
        partition.offsets.hold(offset)
        partition.writes += 1

    @staticmethod
    def written(partition: Partition, offset: int, *, release: bool) -> None:
        """A write for the record at `offset` ended; `release` lets the commit pass it (harmless once dropped)."""
        partition.writes -= 1
        if release:
            partition.offsets.release(offset)

    # -- offsets ---------------------------------------------------------------------------------

    def to_commit(self, numbers: list[int] | None = None) -> dict[int, int]:
        """Partition -> safe offset, for those whose safe offset moved since their last commit."""
        chosen = self.owned.values() if numbers is None else (self.owned[n] for n in numbers if n in self.owned)
        found = {}
        for partition in chosen:
            offset = partition.offsets.to_commit()
            if offset is not None:
                found[partition.number] = offset
        return found
