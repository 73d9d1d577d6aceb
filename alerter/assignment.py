"""Partitions coming and going, cooldowns read back, offsets committed: the consumer group side of the service.

The rebalance callbacks run inside consume(), on the Kafka thread. A new
partition first gets its recent delivered alerts back from the alerts topic,
so a restarted or new instance does not repeat an alert still in cooldown.
A partition that goes is handed over cleanly: its work gets REVOKE_GRACE to
finish, then what is left is taken back from the notifiers, and if some of its
alerts are being posted at that moment (at most one per receiver), the
hand-over waits for those posts (bounded by the receiver's timeout) and, if
delivered, for their records on the alerts topic. Only then is the offset committed: the new owner either
re-reads an alert's record, or finds the alert on the alerts topic, never
neither and never both. (A SIGKILL between Slack's acceptance and that record
is the one window left; see the README.)

A reading older than what was read back asks for a further restore, which
blocks reading (up to RESTORE_TIMEOUT). Record timestamps are the producer's
choice, so these are bounded: at most one per partition per
RESTORE_INTERVAL (a reading that would need another meanwhile is judged on
what is known), and each reaches at least twice as far back as the last, so
timestamps that step back a day at a time cost a few restores, not one each.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Final

from confluent_kafka import KafkaError, KafkaException, Message

from alerter.adapters.alerts_log import AlertsLog, RestoreError
from alerter.adapters.dead_letters import DeadLetters
from alerter.adapters.readings import Source
from alerter.domain.partition import Partition, Partitions
from alerter.domain.timestamps import PAST_LIMIT
from alerter.metrics import AlerterMetrics
from alerter.notifier import NotifierLike
from alerter.watch import ClusterWatch
from shared.codec import DecodeError
from shared.kafka import error_text
from shared.logs import Throttle

log = logging.getLogger(__name__)

RESTORE_MARGIN: Final = 60.0  # extra seconds of alerts history read back, for producers' clock disorder
RESTORE_TIMEOUT: Final = 15.0  # for all partitions of one assignment: a rebalance must not stall for long
RESTORE_INTERVAL: Final = 60.0  # seconds between two restores of one partition asked for by older readings
REVOKE_GRACE: Final = 5.0  # how long a revoked partition's undelivered alerts may still finish
POST_MARGIN: Final = 1.0  # seconds beyond the receiver's timeout that a post under way may take to report


class Assignment:
    def __init__(
        self,
        *,
        partitions: Partitions,
        source: Source,
        alerts_log: AlertsLog,
        dead_letters: DeadLetters,
        notifier: NotifierLike,
        watch: ClusterWatch,
        metrics: AlerterMetrics,
        post_timeout: float,
        serve: Callable[[float], None],
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._partitions = partitions
        self._source = source
        self._alerts_log = alerts_log
        self._dead_letters = dead_letters
        self._notifier = notifier
        self._watch = watch
        self._metrics = metrics
        self._post_timeout = post_timeout
        self._serve = serve  # poll the producer for up to n seconds and settle what came back
        self._clock = clock
        self._monotonic = monotonic
        self._lag_labels: set[int] = set()
        self._restored_at: dict[int, float] = {}  # partition -> monotonic time of its last restore for older readings
        self._throttle = Throttle(30.0)
        self.owning = threading.Event()  # owns at least one partition (read by /readyz)
        self.closing = False  # shutting down: the shutdown already waited for what was under way

    # -- rebalance callbacks ---------------------------------------------------------------------

    def assigned(self, numbers: list[int]) -> None:
        since = self._clock() - self._reach()
        deadline = self._monotonic() + RESTORE_TIMEOUT
        for number in numbers:
            self._metrics.restores.labels("assigned").inc()
            self.restore(self._partitions.assign(number), since, max(1.0, deadline - self._monotonic()))
        self._changed("assigned", numbers)

    def revoked(self, numbers: list[int]) -> None:
        leaving = self._owned(numbers)
        if not self.closing:
            self._hand_over(leaving)
        self._serve(0)
        self.commit(numbers, asynchronous=False)
        self._drop(leaving)
        self._changed("revoked", numbers)

    def lost(self, numbers: list[int]) -> None:
        """The group gave them away already (we were silent too long): nothing may be committed for them."""
        leaving = self._owned(numbers)
        self._notifier.cancel([i for partition in leaving for i in partition.outstanding])
        self._drop(leaving)
        self._changed("lost", numbers)

    def _hand_over(self, leaving: list[Partition]) -> None:
        deadline = self._monotonic() + REVOKE_GRACE
        while any(partition.busy() for partition in leaving) and self._monotonic() < deadline:
            self._serve(0.05)
        self._notifier.cancel([i for partition in leaving for i in partition.outstanding])

        def unsettled() -> bool:  # cancelled ones come back at once; posts under way (one per receiver) finish
            return any(p.outstanding or p.writes for p in leaving)

        deadline = self._monotonic() + self._post_timeout + POST_MARGIN
        while unsettled() and self._monotonic() < deadline:
            self._serve(0.05)

    def _drop(self, leaving: list[Partition]) -> None:
        """Forget partitions we no longer own; their new owner re-reads what we had not finished."""
        for partition in leaving:
            self._partitions.drop(partition.number)
            undelivered = len(partition.outstanding)
            if undelivered and not self.closing:
                self._metrics.alerts_failed.labels("revoked").inc(undelivered)
                log.info(
                    "partition %d moved with %d undelivered alerts; its new owner will raise them",
                    partition.number,
                    undelivered,
                    extra={"partition": partition.number},
                )
            self._restored_at.pop(partition.number, None)
            if partition.number in self._lag_labels:
                self._lag_labels.discard(partition.number)
                self._metrics.consumer_lag.remove(str(partition.number))
        self._metrics.pending_alerts.set(self._partitions.pending)

    def _changed(self, what: str, numbers: list[int]) -> None:
        owned = self._partitions.owned
        self._metrics.partitions_assigned.set(len(owned))
        if owned:
            self.owning.set()
        else:
            self.owning.clear()
        log.info(
            "partitions %s: %s; now own %s",
            what,
            numbers or "none",
            sorted(owned) or "none",
            extra={"topic": self._source.topic},
        )

    def _owned(self, numbers: list[int]) -> list[Partition]:
        return [self._partitions.owned[n] for n in numbers if n in self._partitions.owned]

    # -- cooldowns -------------------------------------------------------------------------------

    def restore(self, partition: Partition, since: float, timeout: float) -> None:
        """Read the partition's delivered notifications since `since` back from the alerts topic into its device
        states (cooldowns by kind, open alerts, silences)."""
        try:
            found = self._alerts_log.restore(partition.number, since, timeout, self._unreadable)
        except RestoreError as exc:
            log.warning(
                "cooldowns of partition %d not restored (%s): a device may alert again within its cooldown",
                partition.number,
                exc,
                extra={"partition": partition.number},
            )
            found = {}
        self._partitions.restored(partition, found, since)
        if found:
            count = sum(len(times) for times in found.values())
            self._metrics.cooldowns_restored.inc(count)
            log.info(
                "restored %d delivered alerts of %d devices for partition %d",
                count,
                len(found),
                partition.number,
                extra={"partition": partition.number},
            )

    def _unreadable(self, message: Message, error: DecodeError) -> None:
        """An alerts-topic record a restore could not read (once per process): to the dead-letter topic with its
        reason, counted, logged at most once per 30 s. Nothing here may stop the restore."""
        where = {"topic": message.topic(), "partition": message.partition(), "offset": message.offset()}
        try:
            code = self._dead_letters.record(message, error, lambda _error: None)  # the copy is produced until acked
        except KafkaException as exc:
            code, copied = "", f"not copied to {self._dead_letters.topic} ({error_text(exc)})"
        else:
            self._metrics.dead_lettered.labels(code).inc()
            copied = f"copied to {self._dead_letters.topic}"
        suppressed = self._throttle.allow(f"unreadable-alert-{code}")
        if suppressed is not None:
            log.warning(
                "skipping an unreadable record on the alerts topic (%s); %s%s",
                error.reason,
                copied,
                f" ({suppressed} more since the last report)" if suppressed else "",
                extra={**where, "reason": code},
            )

    def restore_before(self, partition: Partition, at: float) -> None:
        """A reading at event time `at` is older than what was read back: read back what could matter to it, at most
        once per RESTORE_INTERVAL and at least twice as far back as what is covered (module docstring)."""
        now, ticks = self._clock(), self._monotonic()
        last = self._restored_at.get(partition.number)
        if last is not None and ticks - last < RESTORE_INTERVAL:
            self._metrics.restores_deferred.inc()
            return
        self._restored_at[partition.number] = ticks
        covered = max(0.0, now - partition.restored_since)
        oldest = now - PAST_LIMIT - self._reach()  # no trusted record time is older (alerter.domain.timestamps)
        since = max(oldest, min(at - self._reach(), now - 2 * covered))
        self._metrics.restores.labels("older_reading").inc()
        self.restore(partition, since, RESTORE_TIMEOUT)

    def _reach(self) -> float:
        """How far before a reading's event time a delivered notification can still matter to it (a cooldown, or
        with resolved or silent notices on, an open alert's or a silence's memory)."""
        policy = self._partitions.policy
        return policy.reach + 2 * policy.max_clock_skew + RESTORE_MARGIN

    # -- offsets ---------------------------------------------------------------------------------

    def commit(self, numbers: list[int] | None = None, *, asynchronous: bool) -> None:
        """Commit the safe offset of every owned partition (or of `numbers`) that moved since its last commit."""
        offsets = self._partitions.to_commit(numbers)
        if not offsets:
            return
        owned = self._partitions.owned
        for number, offset in offsets.items():
            owned[number].offsets.committed = offset
        try:
            failed = self._source.commit(offsets, asynchronous=asynchronous)
        except KafkaException as exc:
            failed = list(offsets)
            self._watch.report("commit", exc)
        self._forget_commits(failed)

    def committed(self, error: KafkaError | None, failed: list[int]) -> None:
        """How an asynchronous commit went (the consumer's on_commit)."""
        if error is None and not failed:
            self._watch.recovered()
            return
        self._forget_commits(failed)
        if error is not None and error.code() != KafkaError._NO_OFFSET:
            self._watch.report("commit", error)

    def _forget_commits(self, numbers: list[int]) -> None:
        """Not known to be committed: commit again next time."""
        for number in numbers:
            partition = self._partitions.owned.get(number)
            if partition is not None:
                partition.offsets.committed = None

    def update_lag(self) -> None:
        for partition in self._partitions.owned.values():
            position = partition.offsets.next_offset
            high = None if position is None else self._source.end_offset(partition.number)
            if position is not None and high is not None:
                self._metrics.consumer_lag.labels(str(partition.number)).set(max(0, high - position))
                self._lag_labels.add(partition.number)
