"""The alerter's loop: consume, decide, hand over, settle, commit; on the one thread that owns every Kafka client.

At-least-once: a partition's offset is committed only up to its lowest
record whose work is unfinished (alerter.domain.offsets): an alert not yet
delivered and recorded on the alerts topic, or a dead-letter copy not yet
acknowledged. A crash re-reads exactly that. Slack never blocks reading:
alerts go to the notifier thread, which reports results through one queue;
only when MAX_PENDING_ALERTS are undelivered are the partitions paused (the
readings wait in Kafka) until the receiver has caught up by half.

The consumer, the producer and the restore consumer are all used from
this thread, and every Kafka callback (rebalances, errors, commits, delivery
reports) runs on it, inside consume() and poll(). `run` ends by raising
KafkaException on a fatal client error and NotifierStopped if the notifier
thread died: the caller exits non-zero and a restart re-reads what was not
committed.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import Final, Protocol

from confluent_kafka import KafkaException

from alerter.adapters.alerts_log import AlertsLog
from alerter.adapters.dead_letters import DeadLetters
from alerter.adapters.readings import Source
from alerter.adapters.rekeyed import Rekeyer
from alerter.assignment import Assignment
from alerter.domain.notification import Result
from alerter.domain.partition import Partitions
from alerter.domain.policy import AlertPolicy
from alerter.intake import Intake
from alerter.metrics import AlerterMetrics
from alerter.notifier import NotifierLike
from alerter.settings import AlerterSettings
from alerter.settlement import Settlement
from alerter.watch import ClusterWatch

log = logging.getLogger(__name__)

LAG_INTERVAL: Final = 5.0
OUTAGE_PROBE_INTERVAL: Final = 5.0


class Producer(Protocol):
    """The part of confluent_kafka.Producer the loop itself uses (the adapters produce)."""

    def poll(self, timeout: float = ...) -> int: ...
    def flush(self, timeout: float = ...) -> int: ...


def alert_policy(settings: AlerterSettings) -> AlertPolicy:
    """The pure policy the settings describe."""
    early = settings.early
    return AlertPolicy(
        settings.threshold,
        settings.cooldown,
        settings.max_clock_skew,
        warning_threshold=early.warning_threshold,
        gpu_thresholds=early.thresholds_from_gpu,
        gpu_margin=early.gpu_threshold_margin,
        forecast_horizon=early.forecast_horizon,
        forecast_window=early.forecast_window,
        resolve_after=early.resolve_after,
        resolve_hysteresis=early.resolve_hysteresis,
        silence_after=early.silence_after,
    )


def _early_text(settings: AlerterSettings) -> str:
    """The early warnings turned on, for the start-up line."""
    early, parts = settings.early, []
    if early.warning_threshold is not None:
        parts.append(f"warning above {early.warning_threshold:.2f}°C")
    if early.thresholds_from_gpu:
        parts.append(f"GPUs' own slowdown temperature less {early.gpu_threshold_margin:g}°C")
    if early.forecast_horizon is not None:
        parts.append(f"forecasts {early.forecast_horizon:g}s ahead over {early.forecast_window:g}s")
    if early.resolve_after is not None:
        parts.append(f"resolved after {early.resolve_after:g}s {early.resolve_hysteresis:g}°C below")
    if early.silence_after is not None:
        parts.append(f"silent after {early.silence_after:g}s")
    return f" ({'; '.join(parts)})" if parts else ""


class NotifierStopped(RuntimeError):
    """The notifier thread ended while the service was running: alerts would pile up unsent."""


class AlerterService:
    def __init__(
        self,
        *,
        settings: AlerterSettings,
        source: Source,
        alerts_log: AlertsLog,
        dead_letters: DeadLetters,
        rekeyer: Rekeyer,
        producer: Producer,
        notifier: NotifierLike,
        results: queue.SimpleQueue[Result],
        watch: ClusterWatch,
        metrics: AlerterMetrics,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._settings = settings
        self._monotonic = monotonic
        self._source = source
        self._alerts_log = alerts_log
        self._producer = producer
        self.notifier = notifier
        self._watch = watch
        self._metrics = metrics
        self._partitions = Partitions(alert_policy(settings), settings.max_tracked_devices)
        self._settlement = Settlement(
            partitions=self._partitions,
            results=results,
            alerts_log=alerts_log,
            dead_letters=dead_letters,
            metrics=metrics,
            source_topic=settings.source_topic,
        )
        self._assignment = Assignment(
            partitions=self._partitions,
            source=source,
            alerts_log=alerts_log,
            dead_letters=dead_letters,
            notifier=notifier,
            watch=watch,
            metrics=metrics,
            post_timeout=settings.post_timeout,
            serve=self._serve,
            clock=clock,
            monotonic=monotonic,
        )
        self._intake = Intake(
            partitions=self._partitions,
            dead_letters=dead_letters,
            rekeyer=rekeyer,
            settlement=self._settlement,
            submit=notifier.submit,
            observe=notifier.observe if notifier.observing else None,
            restore_before=self._assignment.restore_before,
            watch=watch,
            metrics=metrics,
            end_offset=source.end_offset,
            clock=clock,
            monotonic=monotonic,
        )
        self.shutdown_started: float | None = None  # monotonic() when shutdown began
        self._next_commit = self._next_lag = self._next_probe = 0.0

    @property
    def processed(self) -> int:
        """Records handled so far, good and bad (the benchmark reads it)."""
        return self._intake.processed

    def ready(self) -> bool:
        """Owning partitions, the cluster reachable, the notifiers alive and no receiver refusing every alert
        (health.HealthServer's /readyz)."""
        return (
            self._assignment.owning.is_set()
            and self._watch.healthy()
            and self.notifier.alive()
            and self.notifier.accepting()
        )

    def run(self, stop: threading.Event) -> None:
        """Consume until `stop` is set, then shut down (also when a fatal error or a dead notifier ends it)."""
        self.start()
        try:
            while not stop.is_set():
                self.step()
        finally:
            self.shutdown()

    def start(self) -> None:
        self._source.open(self._assignment, self._watch.error)
        self.notifier.start()
        settings = self._settings
        log.info(
            "consuming %s as group %s; alerting above %.2f°C%s",
            settings.source_topic,
            settings.consumer_group,
            settings.threshold,
            _early_text(settings),
            extra={"topic": settings.source_topic, "group": settings.consumer_group},
        )
        self._next_commit = self._next_lag = self._next_probe = self._monotonic()

    def step(self) -> None:
        """One turn of the loop: settle, consume a batch, decide, hand over; commit, lag and probe when due."""
        self._settlement.settle()
        batch = self._source.poll()
        if batch is not None:
            self._intake.take(batch)
        self._intake.sweep()
        self._producer.poll(0)
        self._regulate()
        now = self._monotonic()
        if now >= self._next_commit:
            self._check_alive()
            self._settlement.settle()
            self._assignment.commit(asynchronous=True)
            self._next_commit = now + self._settings.commit_interval
        if now >= self._next_lag:
            self._assignment.update_lag()
            self._next_lag = now + LAG_INTERVAL
        if self._watch.outage_since is not None and now >= self._next_probe:
            if self._source.reachable():
                self._watch.recovered()
            self._next_probe = now + OUTAGE_PROBE_INTERVAL

    def _serve(self, timeout: float) -> None:
        """Let the producer report for up to `timeout` seconds, then apply what came back."""
        self._producer.poll(timeout)
        self._settlement.settle()

    def _regulate(self) -> None:
        """Pause reading at MAX_PENDING_ALERTS undelivered alerts; resume once half of them are delivered."""
        pending, limit = self._partitions.pending, self._settings.max_pending_alerts
        if not self._source.paused and pending >= limit:
            self._source.pause(list(self._partitions.owned))
            self._metrics.paused.set(1)
            log.warning(
                "pausing consumption: %d alerts wait for Slack (MAX_PENDING_ALERTS=%d); readings wait in Kafka",
                pending,
                limit,
            )
        elif self._source.paused and pending <= limit // 2:
            self._source.resume(list(self._partitions.owned))
            self._metrics.paused.set(0)
            log.info("resuming consumption: %d alerts still wait for Slack", pending)

    def _check_alive(self) -> None:
        if self._watch.fatal is not None:
            raise KafkaException(self._watch.fatal)
        if not self.notifier.alive():
            raise NotifierStopped(
                f"the notifier thread ended unexpectedly with {self._partitions.pending} alerts undelivered; "
                "stopping so that a restart raises them again"
            )

    def shutdown(self) -> None:
        """Give undelivered alerts `shutdown_timeout` to finish, commit what is safe, leave the group."""
        self.shutdown_started = self._monotonic()
        self._assignment.closing = True
        deadline = self.shutdown_started + self._settings.shutdown_timeout
        partitions = self._partitions
        if partitions.pending and self.notifier.alive():
            log.info(
                "waiting up to %.0fs for %d undelivered alerts", self._settings.shutdown_timeout, partitions.pending
            )

        def unfinished() -> bool:
            return any(p.busy() for p in partitions.owned.values())

        while unfinished() and self._monotonic() < deadline and self.notifier.alive():
            self._serve(0.05)
        self.notifier.stop(timeout=self._settings.post_timeout + 1.0)
        self._settlement.settle()  # deliveries that ended during stop() get their records now
        self._producer.flush(max(1.0, deadline - self._monotonic()))
        self._settlement.settle()
        undelivered = partitions.pending + self._settlement.abandoned
        if undelivered:
            self._metrics.alerts_failed.labels("shutdown").inc(undelivered)
            log.warning(
                "%d alerts were not delivered before shutdown; their records will be read again after a restart",
                undelivered,
            )
        self._assignment.commit(asynchronous=False)
        self._source.close()
        self._alerts_log.close()
        self._assignment.owning.clear()
        log.info("consumer closed")

