"""The partitions an instance owns: offsets, device state and undelivered notifications, as one pure aggregate.

`Partitions` turns readings into notifications (through the policy), applies
the notifier's results, and knows, per partition, what must be finished
before the offset may pass a record. It does no I/O: the service carries out
what it returns (hand a notification over, record a delivered one, park a
refused one) and reports back when a write was acknowledged.

**A partition's clock.** Silence and backlogs are judged on each partition's
own event-time progress: the newest event time judged on it, and, while it
is read to its end, the wall clock less the clock skew (every record produced
before then has been read). A backlog or a paused consumer therefore leaves
the clock behind and makes no device look silent, and a publisher that
stopped altogether still lets silence show once the partition is caught up.

**The sweep** (`sweep`, about once a second) raises what no reading raises:
backlog alerts once their partition is current (its clock within `late_after`
of the wall clock) or has stayed read to its end for CAUGHT_UP_FOR seconds
(not merely between two fetches of a backlog still arriving), and, every
scan interval, silent alerts; it forgets what can no longer matter
(delivered alerts older than cooldown + 2*skew + a margin, devices with
nothing left to remember), and moves the replay floor: with windows to
rebuild (trend, cool run, silence timer) the commit stays where a restart
must read again (alerter.domain.offsets.ReplayPoints).

**Bounded.** At most `max_devices` device states are kept across the owned
partitions; beyond that `over_limit` forgets those seen longest ago (never
one with a notification in flight or a backlog alert waiting), and the
service counts and logs it: such a device may alert again within its
cooldown, or miss a resolved or silent notice, but no due alert is dropped.

A partition that moves away leaves its delivered notifications behind
(`retired`), in case it comes back before the alerts topic can be read back,
and a result that arrives for a partition no longer owned is *stale*: a
delivery among them still counts.
"""

from __future__ import annotations

import heapq
import itertools
import math
from typing import Final

from alerter.domain.notification import Kind, Notification, Recorded, Resolution, Result, Status
from alerter.domain.offsets import Offsets, ReplayPoints
from alerter.domain.policy import OPEN_MEMORY, AlertPolicy, DeviceState, Due, More, Verdict, folded
from shared.models import AlertEvent, TemperatureReading

CAUGHT_UP_FOR: Final = 5.0  # seconds a partition must stay read to its end before backlog alerts go out that way
EVICT_TO: Final = 0.9  # over the limit, evict down to this share of it (so eviction runs rarely)
_WINDOWED: Final = (Kind.FORECAST, Kind.RESOLVED)  # drawn from a window of readings, not from one


class Partition:
    """One owned readings partition."""

    __slots__ = (
        "caught_up_since",
        "clock",
        "devices",
        "folds",
        "memory_since",
        "number",
        "offsets",
        "outstanding",
        "replay",
        "restored_since",
        "scanned",
        "writes",
    )

    def __init__(self, number: int, devices: dict[str, DeviceState] | None = None, replay: float = 0.0) -> None:
        self.number = number
        self.offsets = Offsets()
        self.devices: dict[str, DeviceState] = devices or {}  # per device of this partition; swept
        self.outstanding: dict[int, Notification] = {}  # handed to the notifier, no result yet
        self.writes = 0  # records produced for it (alerts topic, dead letters) not yet acknowledged
        self.restored_since = math.inf  # delivered alerts at or after this event time are in `devices`
        self.memory_since = math.inf  # open alerts and silences raised at or after this are in `devices`
        self.clock = -math.inf  # the newest event time judged on it (the sweep may move its clock further)
        self.scanned = -math.inf  # the clock at the last scan: silence is judged up to it
        self.folds: set[str] = set()  # devices with a backlog alert waiting
        self.caught_up_since = math.inf  # wall time since which it has been read to its end
        self.replay = ReplayPoints(max(0.5, replay / 64)) if replay > 0 else None

    def busy(self) -> bool:
        """Work under way that a hand-over would cut short."""
        return bool(self.outstanding) or self.writes > 0


class Partitions:
    def __init__(self, policy: AlertPolicy, max_devices: int = 250_000) -> None:
        self.policy = policy
        self.max_devices = max_devices
        self.owned: dict[int, Partition] = {}
        self.retired: dict[int, tuple[float, dict[str, DeviceState]]] = {}  # number -> (clock, delivered states)
        self.pending = 0  # notifications outstanding, all partitions
        self.expired = 0  # device states forgotten because nothing in them could matter any more (a counter)
        # Devices whose silent alert still stands, with the partition clock: found by each scan, taken by the
        # intake (receivers that keep alerts alive, like Alertmanager's, are told the silence holds).
        self.still_silent: list[tuple[TemperatureReading, float]] = []
        self._ids = itertools.count()

    @property
    def tracked(self) -> int:
        """Device states kept, all owned partitions."""
        return sum(len(p.devices) for p in self.owned.values())

    # -- ownership -------------------------------------------------------------------------------

    def assign(self, number: int) -> Partition:
        """Take a partition on (one already owned stays as it is), with the notifications it left behind."""
        if number not in self.owned:
            _clock, devices = self.retired.pop(number, (0.0, {}))
            self.owned[number] = Partition(number, devices, self.policy.replay_window)
        return self.owned[number]

    def drop(self, number: int) -> Partition | None:
        """Give a partition up; its outstanding notifications are the new owner's to raise again."""
        partition = self.owned.pop(number, None)
        if partition is None:
            return None
        kept = {device: kept for device, state in partition.devices.items() if (kept := _retained(state))}
        if kept:
            self.retired[number] = (partition.clock, kept)
        self.pending -= len(partition.outstanding)
        return partition

    def needs_restore(self, partition: Partition, at: float) -> bool:
        """Whether a reading at event time `at` may depend on notifications not read back yet."""
        policy = self.policy
        if at - policy.cooldown < partition.restored_since:
            return True
        return policy.reach > policy.cooldown and at - OPEN_MEMORY < partition.memory_since

    def restored(self, partition: Partition, found: dict[str, tuple[Recorded, ...]], since: float) -> None:
        """Notifications delivered since `since`, read back from the alerts topic, join the device states."""
        devices = partition.devices
        for device, records in found.items():
            state = devices.get(device)
            if state is None:
                state = devices[device] = DeviceState()
            self.policy.restored(state, records)
        partition.restored_since = partition.memory_since = since

    # -- decisions -------------------------------------------------------------------------------

    def judge(
        self, partition: Partition, reading: TemperatureReading, offset: int, at: float, now: float
    ) -> tuple[Verdict, list[Notification]]:
        """The policy's verdict on a reading at event time `at`, judged at wall time `now`, and what it raised
        (each holding its record until settled)."""
        device = reading.device_id
        state = partition.devices.get(device)
        if state is None:
            state = partition.devices[device] = DeviceState()
        folding = folded(state) is not None
        verdict, dues = self.policy.judge(state, reading, offset, at, now)
        partition.clock = max(partition.clock, at)
        if partition.replay is not None:
            partition.replay.note(offset, at)
            if partition.offsets.floor is None:
                partition.offsets.floor = offset  # needed until a sweep says otherwise
        fold = folded(state)
        if fold is not None and not folding:
            partition.offsets.hold(fold.offset)  # a crash before its alert is settled folds again
            partition.folds.add(device)
        elif folding and fold is None:
            partition.folds.discard(device)
        if not dues:
            return verdict, []
        return verdict, [self._hand_over(partition, due) for due in dues]

    def sweep(self, partition: Partition, now: float, *, caught_up: bool, scan: bool) -> list[Notification]:
        """What the partition's clock makes due at wall time `now` (module docstring); `caught_up`: read to its
        end; `scan`: also look at every device (silence, expiry)."""
        policy = self.policy
        if caught_up:
            partition.caught_up_since = min(partition.caught_up_since, now)
        else:
            partition.caught_up_since = math.inf
        settled = now - partition.caught_up_since >= CAUGHT_UP_FOR  # not just between two fetches of a backlog
        clock = max(partition.clock, now - policy.max_clock_skew) if settled else partition.clock
        current = now - clock <= policy.late_after
        raised = []
        if partition.folds and current:
            for device in sorted(partition.folds):
                due = policy.unfold(partition.devices[device])
                if due is not None:
                    raised.append(self._hand_over(partition, due))
            partition.folds.clear()
        if scan and clock > -math.inf:
            raised += self._scan(partition, clock, silence=current)
        replay = partition.replay
        if replay is not None:
            since = partition.scanned - policy.replay_window
            replay.prune(since - policy.late_after - 2 * policy.max_clock_skew)  # kept for holds (_hand_over)
            partition.offsets.floor = replay.start(since)
        return raised

    def _scan(self, partition: Partition, clock: float, *, silence: bool) -> list[Notification]:
        policy = self.policy
        horizon, memory = policy.expiry_horizon(clock), policy.memory_horizon(clock)
        watch = silence and policy.silence_after is not None
        raised = []
        expired = []
        for device, state in partition.devices.items():
            if watch:
                due = policy.silence(state, clock)
                if due is not None:
                    raised.append(self._hand_over(partition, due))
                elif (last := policy.still_silent(state)) is not None:
                    self.still_silent.append((last, clock))
            policy.forget(state, horizon)
            if policy.expired(state, clock):
                expired.append(device)
        for device in expired:
            del partition.devices[device]
        if len(expired) > len(partition.devices):  # a dict keeps its size after deletions: let a large one shrink
            partition.devices = dict(partition.devices)
        self.expired += len(expired)
        partition.restored_since = max(partition.restored_since, horizon)
        partition.memory_since = max(partition.memory_since, memory)
        if silence or policy.silence_after is None:
            partition.scanned = clock  # else the devices to call silent later must stay above the replay floor
        for number in [n for n, (dropped, _) in self.retired.items() if dropped < memory]:
            del self.retired[number]
        return raised

    def over_limit(self) -> int:
        """Past `max_devices` states: forget those seen longest ago, down to EVICT_TO of the limit; how many."""
        tracked = self.tracked
        if tracked <= self.max_devices:
            return 0
        excess = tracked - round(self.max_devices * EVICT_TO)
        candidates = (
            (state.seen, number, device)
            for number, partition in self.owned.items()
            for device, state in partition.devices.items()
            if not state.in_flight and folded(state) is None
        )
        oldest = heapq.nsmallest(excess, candidates)
        for _seen, number, device in oldest:
            del self.owned[number].devices[device]
        for partition in self.owned.values():
            partition.devices = dict(partition.devices)  # a dict keeps its size after deletions
        return len(oldest)

    def _hand_over(self, partition: Partition, due: Due) -> Notification:
        """A due notification, holding its record (for one drawn from a window, the window's first record, so a
        restart reads the whole window again and raises it again) until settled."""
        offset = due.offset
        if partition.replay is not None and due.kind in _WINDOWED and not _ends_silence(due.detail):
            start = partition.replay.start(due.at - self.policy.replay_window)
            offset = offset if start is None else min(offset, start)
        alert = AlertEvent.from_reading(due.reading, due.threshold)
        notification = Notification(next(self._ids), due.kind, alert, partition.number, offset, due.at, due.detail)
        if not due.held:
            partition.offsets.hold(offset)
        partition.outstanding[notification.id] = notification
        self.pending += 1
        return notification

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
        device, kind, at = notification.alert.device_id, notification.kind, notification.at
        state = partition.devices.get(device)
        if state is None:
            state = partition.devices[device] = DeviceState()
        if result.status in (Status.DELIVERED, Status.REJECTED):  # a refused alert keeps its cooldown too
            self.policy.delivered(state, kind, at)
        else:
            self.policy.abandoned(state, kind, at)
        if result.status in (Status.DELIVERED, Status.REJECTED):
            partition.writes += 1
        return partition

    def _remember(self, notification: Notification) -> None:
        """A delivery for a partition we no longer own (or own anew): still a notification we know of."""
        current = self.owned.get(notification.partition)
        if current is not None:
            states = current.devices
        else:
            states = self.retired.setdefault(notification.partition, (notification.at, {}))[1]
        device = notification.alert.device_id
        state = states.get(device)
        if state is None:
            state = states[device] = DeviceState()
        recorded = Recorded(notification.kind, notification.at, _ends(notification), notification.alert.temperature)
        self.policy.restored(state, (recorded,))

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


def _retained(state: DeviceState) -> DeviceState | None:
    """What of a state is worth keeping for a partition that may come back: its delivered notifications."""
    extra = state.more
    remembers = extra is not None and (extra.alerted > extra.resolved or extra.silenced > extra.heard)
    if not (state.delivered or remembers):
        return None
    kept = DeviceState()
    kept.delivered, kept.seen = state.delivered, state.seen
    if extra is not None and remembers:
        memory = kept.more = More()
        memory.alerted, memory.alerted_temperature, memory.resolved = (
            extra.alerted,
            extra.alerted_temperature,
            extra.resolved,
        )
        memory.silenced, memory.heard = extra.silenced, extra.heard
    return kept


def _ends_silence(detail: object) -> bool:
    return isinstance(detail, Resolution) and Kind.SILENT in detail.ends


def _ends(notification: Notification) -> tuple[Kind, ...]:
    detail = notification.detail
    return detail.ends if isinstance(detail, Resolution) else ()
