"""A batch of readings in: offsets advanced, unreadable records dead-lettered, hot readings decided and handed over.

Runs on the Kafka thread, once per consume() batch. Per hot reading: a
check that the record is keyed by its device_id (else it is produced again,
keyed so, to be judged on the device's own partition: adapters/rekeyed.py), its
event time (policy.event_time, around the record's timestamp, or around its
arrival when that timestamp is missing or absurd: alerter.domain.timestamps),
a restore of older cooldowns if the reading is older than what was read back
(bounded by the assignment), the policy's verdict, and for an alert one log
line and a hand-over to the notifier. Everything else is per batch.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from confluent_kafka import KafkaException, Message

from alerter.adapters.dead_letters import DeadLetters, why_unreadable
from alerter.adapters.readings import Batch
from alerter.adapters.rekeyed import Rekeyer
from alerter.domain.notification import Notification
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
        clock: Callable[[], float] = time.time,
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

    def _decide(self, hot: list[tuple[Message, TemperatureReading]]) -> None:
        partitions = self._partitions
        policy = partitions.policy
        skew, cooldown = policy.max_clock_skew, policy.cooldown
        counts = {Verdict.ALERT: 0, Verdict.COOLDOWN: 0, Verdict.IN_FLIGHT: 0, Verdict.NORMAL: 0}
        arrival = self._clock()
        rekeyed = 0
        seen: dict[str, tuple[TemperatureReading, float]] | None = {} if self._observe is not None else None
        for message, reading in hot:
            partition = partitions.owned.get(message.partition())  # type: ignore[arg-type]
            if partition is None:
                continue
            if message.key() != reading.device_id.encode():
                rekeyed += self._rekey(partition, message, reading.device_id)
                continue
            kind, millis = message.timestamp()
            at = event_time(reading.timestamp.timestamp(), record_time(kind, millis, arrival), skew)
            if at - cooldown < partition.restored_since:
                self._restore_before(partition, at)
            verdict, notification = partitions.decide(partition, reading, message.offset(), at)  # type: ignore[arg-type]
            counts[verdict] += 1
            if seen is not None and verdict is not Verdict.ALERT:
                seen[reading.device_id] = (reading, at)
            if notification is not None:
                log.warning(
                    "HIGH TEMPERATURE ALERT: Device %s - %.2f°C exceeds threshold of %.2f°C",
                    reading.device_id,
                    reading.temperature,
                    policy.threshold,
                    extra={"device": reading.device_id, "partition": partition.number, "offset": notification.offset},
                )
                self._submit(notification)
        if seen and self._observe is not None:
            self._observe([Sighting(AlertEvent.from_reading(r, policy.threshold), at) for r, at in seen.values()])
        if rekeyed:
            self._metrics.readings_rekeyed.inc(rekeyed)
        if counts[Verdict.ALERT]:
            self._metrics.alerts_raised.inc(counts[Verdict.ALERT])
            self._metrics.pending_alerts.set(partitions.pending)
        if counts[Verdict.COOLDOWN]:
            self._metrics.alerts_suppressed.labels("cooldown").inc(counts[Verdict.COOLDOWN])
        if counts[Verdict.IN_FLIGHT]:
            self._metrics.alerts_suppressed.labels("in_flight").inc(counts[Verdict.IN_FLIGHT])

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
