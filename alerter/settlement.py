"""What comes back, carried out on the Kafka thread: results from the notifier, acknowledgements from the broker.

A delivered alert is recorded on the alerts topic (its cooldown survives a
restart); a refused one is parked on the dead-letter topic, and so is a
delivered one that another receiver refused. Either way the record that
raised it stays held until the broker acknowledged those writes,
so the committed offset never passes an alert that is not both delivered (or
parked) and written down. Delivery reports arrive inside `producer.poll` and
are only queued there; `settle` applies them, so no callback ever changes the
partitions in the middle of other work.
"""

from __future__ import annotations

import logging
import queue
from collections import deque
from collections.abc import Callable

from confluent_kafka import KafkaError, KafkaException

from alerter.adapters.alerts_log import AlertsLog
from alerter.adapters.dead_letters import DeadLetters
from alerter.domain.notification import Notification, Resolution, Result, Status
from alerter.domain.partition import Partition, Partitions
from alerter.metrics import AlerterMetrics
from shared.codec import encode
from shared.kafka import error_text
from shared.logs import Throttle

log = logging.getLogger(__name__)

OnDone = Callable[[KafkaError | None], None]


class Settlement:
    def __init__(
        self,
        *,
        partitions: Partitions,
        results: queue.SimpleQueue[Result],
        alerts_log: AlertsLog,
        dead_letters: DeadLetters,
        metrics: AlerterMetrics,
        source_topic: str,
    ) -> None:
        self._partitions = partitions
        self._results = results
        self._alerts_log = alerts_log
        self._dead_letters = dead_letters
        self._metrics = metrics
        self._source_topic = source_topic
        self._acks: deque[tuple[Partition, int, bool]] = deque()  # (partition, offset, release)
        self._throttle = Throttle(10.0)
        self.abandoned = 0  # given up unsent (at shutdown): their records are read again after a restart

    def settle(self) -> None:
        """Apply the acknowledgements and results that arrived since the last call."""
        while self._acks:
            partition, offset, release = self._acks.popleft()
            Partitions.written(partition, offset, release=release)
        while True:
            try:
                result = self._results.get_nowait()
            except queue.Empty:
                break
            self._apply(result)
        self._metrics.pending_alerts.set(self._partitions.pending)

    def acknowledger(self, partition: Partition, offset: int) -> OnDone:
        """A delivery callback for a write the record at `offset` waits on (see Partitions.writing): released
        once the broker has it; kept held if it could not be made (read again after a restart)."""
        return lambda error: self._acks.append((partition, offset, error is None))

    def _apply(self, result: Result) -> None:
        partition = self._partitions.settle(result)  # None: stale (its partition moved since)
        notification = result.notification
        if result.status is Status.DELIVERED:
            self._record(partition, notification)  # stale or not: its cooldown must be known after a restart
            if result.reason:  # another receiver refused it: keep that refusal's copy too
                if partition is not None:
                    Partitions.writing(partition, notification.offset)
                self._park(partition, notification, result.reason)
        elif partition is None:
            return  # the partition's new owner raises it again
        elif result.status is Status.REJECTED:
            self._park(partition, notification, result.reason)
        elif result.status is Status.ABANDONED:
            self.abandoned += 1

    def _record(self, partition: Partition | None, notification: Notification) -> None:
        def recorded(error: KafkaError | None) -> None:
            if error is not None:
                self._record_lost(notification, error_text(error))
            if partition is not None:
                self._acks.append((partition, notification.offset, True))  # delivered: never to be sent again

        try:
            self._alerts_log.record(
                notification.alert,
                notification.at,
                notification.partition,
                recorded,
                kind=notification.kind,
                ends=notification.detail.ends if isinstance(notification.detail, Resolution) else (),
            )
        except KafkaException as exc:
            self._record_lost(notification, error_text(exc))
            if partition is not None:
                Partitions.written(partition, notification.offset, release=True)

    def _record_lost(self, notification: Notification, cause: str) -> None:
        if self._throttle.allow("record") is not None:
            log.error(
                "could not record a delivered alert on %s (%s): its cooldown will not survive a restart",
                self._alerts_log.topic,
                cause,
                extra={"device": notification.alert.device_id},
            )

    def _park(self, partition: Partition | None, notification: Notification, reason: str) -> None:
        """A refused alert to the dead-letter topic; its record (if its partition is still ours) waits for it."""
        alert = notification.alert
        source = (self._source_topic, notification.partition, notification.offset)
        parked = (lambda _error: None) if partition is None else self.acknowledger(partition, notification.offset)
        try:
            self._dead_letters.alert(alert.device_id.encode(), encode(alert), reason, source, parked)
        except KafkaException as exc:
            if partition is not None:
                Partitions.written(partition, notification.offset, release=False)
            self._metrics.alerts_failed.labels("error").inc()
            if self._throttle.allow("park") is not None:
                log.error(  # noqa: TRY400 - one clear line, no traceback
                    "could not handle an alert (%s); its record stays uncommitted and is read again after a restart",
                    error_text(exc),
                    extra={"device": alert.device_id},
                )
