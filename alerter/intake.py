"""A batch of readings in: offsets advanced, unreadable records dead-lettered, readings judged and handed over.

Runs on the Kafka thread, once per consume() batch. Per reading the source
passed on (the hot ones; every one when the policy needs them all): a check
that the record is keyed by its device_id (else it is produced again, keyed
so, to be judged on the device's own partition: adapters/rekeyed.py), its
event time (policy.event_time, around the record's timestamp, or around its
arrival when that timestamp is missing or absurd: alerter.domain.timestamps),
a restore of older notifications if the reading is older than what was read
back (bounded by the assignment), the policy's verdict, and for each
notification due one log line and a hand-over to the notifier. Everything
else is per batch. `sweep`, about once a second, raises what no reading
raises (backlog alerts, silences) and forgets what can no longer matter.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Final

from confluent_kafka import KafkaException, Message

from alerter.adapters.dead_letters import DeadLetters, why_unreadable
from alerter.adapters.readings import Batch
from alerter.adapters.rekeyed import Rekeyer
from alerter.domain.notification import Backlog, Kind, Notification, Outlook, Resolution, Silence
from alerter.domain.partition import Partition, Partitions
from alerter.domain.policy import Verdict, event_time
from alerter.domain.timestamps import record_time
from alerter.metrics import AlerterMetrics
from alerter.receiver import Sighting
from alerter.settlement import Settlement
from alerter.watch import ClusterWatch
from shared.kafka import error_text
from shared.logs import Throttle
from shared.models import AlertEvent, TemperatureReading

log = logging.getLogger(__name__)

SWEEP_INTERVAL: Final = 1.0  # seconds between sweeps (backlog alerts of caught-up partitions, the replay floor)
SCAN_MIN, SCAN_MAX = 1.0, 30.0  # seconds between looks at every device (silence, expiry), from the windows
_SUPPRESSED: Final = {
    Verdict.COOLDOWN: "cooldown",
    Verdict.IN_FLIGHT: "in_flight",
    Verdict.INHIBITED: "inhibited",
    Verdict.FOLDED: "folded",
    Verdict.LATE: "late",
}
_QUIET: Final = (Verdict.COOLDOWN, Verdict.IN_FLIGHT)  # above a threshold, kept quiet: a sighting


class Intake:
    def __init__(
        self,
        *,
        partitions: Partitions,
        dead_letters: DeadLetters,
        rekeyer: Rekeyer,
        settlement: Settlement,
        submit: Callable[[Notification], None],
        observe: Callable[[list[Sighting]], None] | None,
        restore_before: Callable[[Partition, float], None],
        watch: ClusterWatch,
        metrics: AlerterMetrics,
        end_offset: Callable[[int], int | None] = lambda _partition: None,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._partitions = partitions
        self._dead_letters = dead_letters
        self._rekeyer = rekeyer
        self._settlement = settlement
        self._submit = submit
        self._observe = observe  # hot readings kept quiet by a cooldown: their alert's condition still holds
        self._restore_before = restore_before  # (partition, event time): make sure cooldowns reaching it are known
        self._watch = watch
        self._metrics = metrics
        self._clock = clock
        self._bad_throttle = Throttle(5.0)
        self._rekey_throttle = Throttle(30.0)
        self._limit_throttle = Throttle(60.0)
        self._end_offset = end_offset  # a partition's high watermark as last fetched (None: not known)
        self._monotonic = monotonic
        policy = partitions.policy
        windows = [w for w in (policy.cooldown, policy.silence_after) if w]
        self._scan_every = min(SCAN_MAX, max(SCAN_MIN, min(windows, default=SCAN_MAX) / 10))
        self._next_sweep = self._next_scan = -math.inf
        self.processed = 0  # records handled, good and bad (benchmarks read it)

    def take(self, batch: Batch) -> None:
        for error in batch.errors:
            self._watch.error(error)
        if batch.bad:
            self._dead_letter(batch.bad)
        if batch.records:
            self._watch.recovered()
            self.processed += batch.records
            self._metrics.readings_consumed.inc(batch.records)
        owned = self._partitions.owned
        for number, end in batch.ends.items():
            partition = owned.get(number)
            if partition is not None:  # else it was taken away while the batch was in hand
                partition.offsets.advance(end)
        if batch.hot:
            self._decide(batch.hot)

    def _decide(self, readings: list[tuple[Message, TemperatureReading]]) -> None:
        partitions = self._partitions
        policy = partitions.policy
        skew = policy.max_clock_skew
        counts = dict.fromkeys(Verdict, 0)
        arrival = self._clock()
        rekeyed = 0
        raised: list[Notification] = []
        seen: dict[str, tuple[TemperatureReading, float]] | None = {} if self._observe is not None else None
        for message, reading in readings:
            partition = partitions.owned.get(message.partition())  # type: ignore[arg-type]
            if partition is None:
                continue
            if message.key() != reading.device_id.encode():
                rekeyed += self._rekey(partition, message, reading.device_id)
                continue
            kind, millis = message.timestamp()
            at = event_time(reading.timestamp.timestamp(), record_time(kind, millis, arrival), skew)
            if partitions.needs_restore(partition, at):
                self._restore_before(partition, at)
            verdict, notifications = partitions.judge(partition, reading, message.offset(), at, arrival)  # type: ignore[arg-type]
            counts[verdict] += 1
            if seen is not None and verdict in _QUIET:
                seen[reading.device_id] = (reading, at)
            if notifications:
                raised += notifications
        self._hand_over(raised)
        if seen and self._observe is not None:
            self._observe([self._sighting(reading, at) for reading, at in seen.values()])
        if rekeyed:
            self._metrics.readings_rekeyed.inc(rekeyed)
        for verdict, reason in _SUPPRESSED.items():
            if counts[verdict]:
                self._metrics.alerts_suppressed.labels(reason).inc(counts[verdict])
        self._check_limit()

    def _sighting(self, reading: TemperatureReading, at: float) -> Sighting:
        """A reading kept quiet by a cooldown: the critical or warning alert it would raise still holds."""
        limits = self._partitions.policy.limits(reading)
        if reading.temperature > limits.critical or limits.warning is None:
            return Sighting(AlertEvent.from_reading(reading, limits.critical), at)
        return Sighting(AlertEvent.from_reading(reading, limits.warning), at, Kind.WARNING)

    def _silence(self, reading: TemperatureReading, at: float) -> Sighting:
        """A device still silent at partition clock `at`: its silent alert (on its last reading) still holds."""
        limits = self._partitions.policy.limits(reading)
        return Sighting(AlertEvent.from_reading(reading, limits.critical), at, Kind.SILENT)

    def sweep(self) -> None:
        """Once a second: what the partitions' clocks make due (backlog alerts, silences), and forgetting."""
        now = self._monotonic()
        if now < self._next_sweep:
            return
        self._next_sweep = now + SWEEP_INTERVAL
        scan = now >= self._next_scan
        if scan:
            self._next_scan = now + self._scan_every
        partitions = self._partitions
        wall = self._clock()
        raised: list[Notification] = []
        expired = partitions.expired
        for partition in list(partitions.owned.values()):
            end, position = self._end_offset(partition.number), partition.offsets.next_offset
            caught_up = end is not None and position is not None and position >= end
            raised += partitions.sweep(partition, wall, caught_up=caught_up, scan=scan)
        self._hand_over(raised)
        silent, partitions.still_silent = partitions.still_silent, []
        if silent and self._observe is not None:
            self._observe([self._silence(reading, at) for reading, at in silent])
        if partitions.expired > expired:
            self._metrics.devices_evicted.labels("expired").inc(partitions.expired - expired)
        self._check_limit()

    def _check_limit(self) -> None:
        partitions = self._partitions
        evicted = partitions.over_limit()
        if evicted:
            self._metrics.devices_evicted.labels("limit").inc(evicted)
            suppressed = self._limit_throttle.allow("limit")
            if suppressed is not None:
                log.warning(
                    "tracking more than MAX_TRACKED_DEVICES=%d devices: forgot the %d seen longest ago (their "
                    "cooldowns, open alerts, trends and silence timers); each may alert again within its cooldown "
                    "or miss a resolved or silent notice%s",
                    partitions.max_devices,
                    evicted,
                    f" ({suppressed} more evictions since the last report)" if suppressed else "",
                )
        self._metrics.devices_tracked.set(partitions.tracked)

    def _hand_over(self, raised: list[Notification]) -> None:
        if not raised:
            return
        for notification in raised:
            _log_raised(notification)
            self._metrics.notifications_raised.labels(notification.kind.value).inc()
            self._submit(notification)
        self._metrics.alerts_raised.inc(len(raised))
        self._metrics.pending_alerts.set(self._partitions.pending)

    def _rekey(self, partition: Partition, message: Message, device: str) -> int:
        """Produce a hot reading keyed otherwise again, keyed by its device; its record is held until that copy is
        acknowledged. Returns 1 when the copy is on its way, 0 when it could not be made (the record stays held)."""
        offset: int = message.offset()  # type: ignore[assignment]
        key = message.key()
        shown = "no key" if key is None else f"key {key[:64].decode('utf-8', 'replace')!r}"
        where = {"device": device, "partition": partition.number, "offset": offset}
        Partitions.writing(partition, offset)
        try:
            self._rekeyer.rekey(message, device, self._settlement.acknowledger(partition, offset))
        except KafkaException as exc:
            Partitions.written(partition, offset, release=False)
            log.error(  # noqa: TRY400 - one clear line
                "cannot produce a reading of %s (%s) again keyed by its device (%s); it stays uncommitted and is read "
                "again after a restart",
                device,
                shown,
                error_text(exc),
                extra=where,
            )
            return 0
        suppressed = self._rekey_throttle.allow("rekeyed")
        if suppressed is not None:
            log.warning(
                "a hot reading of %s came with %s; produced again to %s keyed by its device_id, to be judged on its "
                "device's partition%s",
                device,
                shown,
                self._rekeyer.topic,
                f" ({suppressed} more since the last report)" if suppressed else "",
                extra=where,
            )
        return 1

    def _dead_letter(self, messages: list[Message]) -> None:
        """Copy unreadable records to the dead-letter topic; each stays held until the copy is acknowledged."""
        counts: dict[str, int] = {}
        for message in messages:
            partition = self._partitions.owned.get(message.partition())  # type: ignore[arg-type]
            if partition is None:
                continue
            offset: int = message.offset()  # type: ignore[assignment]
            problem = why_unreadable(message.value())
            Partitions.writing(partition, offset)
            partition.offsets.advance(offset + 1)
            try:
                code = self._dead_letters.record(message, problem, self._settlement.acknowledger(partition, offset))
            except KafkaException as exc:
                Partitions.written(partition, offset, release=False)
                log.error(  # noqa: TRY400 - one clear line
                    "cannot copy an unreadable record to %s (%s); it stays uncommitted and is read again after a "
                    "restart",
                    self._dead_letters.topic,
                    error_text(exc),
                    extra={"topic": message.topic(), "partition": partition.number, "offset": offset},
                )
                continue
            counts[code] = counts.get(code, 0) + 1
            suppressed = self._bad_throttle.allow(code)  # a flood of one kind costs a line per interval
            if suppressed is not None:
                log.warning(
                    "skipping an unreadable record (%s); copied to %s%s",
                    problem.reason,
                    self._dead_letters.topic,
                    f" ({suppressed} more since the last report)" if suppressed else "",
                    extra={"topic": message.topic(), "partition": partition.number, "offset": offset, "reason": code},
                )
        for code, count in counts.items():
            self._metrics.dead_lettered.labels(code).inc(count)


def _log_raised(notification: Notification) -> None:
    """One line per notification raised; a plain critical one is the original's HIGH TEMPERATURE ALERT line."""
    alert, detail = notification.alert, notification.detail
    device, temperature, threshold = alert.device_id, alert.temperature, alert.temperature_threshold
    extra = {"device": device, "partition": notification.partition, "offset": notification.offset}
    kind = notification.kind
    if kind is Kind.CRITICAL and isinstance(detail, Backlog):
        log.warning(
            "HIGH TEMPERATURE WHILE BEHIND: Device %s ran above %.2f°C from %s to %s: %d readings, peak %.2f°C",
            device, threshold, _clock_time(detail.first), _clock_time(detail.last), detail.count, detail.peak,
            extra=extra,
        )
    elif kind is Kind.CRITICAL:
        log.warning(
            "HIGH TEMPERATURE ALERT: Device %s - %.2f°C exceeds threshold of %.2f°C",
            device, temperature, threshold, extra=extra,
        )
    elif kind is Kind.WARNING:
        log.warning(
            "TEMPERATURE WARNING: Device %s - %.2f°C exceeds warning threshold of %.2f°C",
            device, temperature, threshold, extra=extra,
        )
    elif kind is Kind.FORECAST and isinstance(detail, Outlook):
        log.warning(
            "TEMPERATURE FORECAST: Device %s - %.2f°C, expected to reach %.2f°C in %.0fs (%+.1f°C/min)",
            device, temperature, threshold, detail.eta, detail.rate, extra=extra,
        )
    elif kind is Kind.SILENT and isinstance(detail, Silence):
        log.warning(
            "SILENT: Device %s - no readings for %.0fs; last %.2f°C at %s",
            device, detail.silent_for, temperature, _clock_time(detail.last_seen), extra=extra,
        )
    elif kind is Kind.RESOLVED and isinstance(detail, Resolution) and Kind.SILENT in detail.ends:
        log.info("REPORTS AGAIN: Device %s - %.2f°C", device, temperature, extra=extra)
    elif kind is Kind.RESOLVED and isinstance(detail, Resolution):
        log.info(
            "RESOLVED: Device %s - %.2f°C, below %.2f°C since %s",
            device, temperature, detail.below, _clock_time(detail.since), extra=extra,
        )
    else:
        log.warning("%s: Device %s - %.2f°C", kind.value.upper(), device, temperature, extra=extra)


def _clock_time(epoch: float) -> str:
    """HH:MM:SS UTC of an event time, for log lines."""
    return datetime.fromtimestamp(epoch, UTC).strftime("%H:%M:%S") if math.isfinite(epoch) else "?"
