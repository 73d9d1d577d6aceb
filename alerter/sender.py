"""The Slack side of the alerter: a worker thread that delivers alerts one at a time, in order, retrying.

Consumption never waits for Slack: the main loop hands each due alert over and
goes on reading. The worker posts it (retrying timeouts, connection errors,
5xx and 429 until Slack accepts), records the delivered alert on the alerts
topic, and reports back through a queue; the main loop then starts the
device's cooldown and releases the record's offset. An alert Slack refuses for
good (4xx) is parked on the dead-letter topic instead. One worker keeps each
device's alerts in order and sends at the pace Slack allows.

An unexpected error while handling one alert (a Kafka client error, say)
fails that alert only: its record stays uncommitted, so it is raised again
after a restart or a rebalance, and the worker goes on. Should the worker end
anyway, `alive()` says so and the service stops (SenderStopped).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum

from confluent_kafka import KafkaError, KafkaException, Producer

from alerter.cooldown_store import CooldownStore
from alerter.dead_letter import DeadLetters
from alerter.ledger import PartitionLedger
from alerter.metrics import AlerterMetrics
from alerter.slack import Attempt, Outcome, WebhookClient
from shared.codec import encode
from shared.logs import Throttle
from shared.models import AlertEvent

log = logging.getLogger(__name__)


class Result(Enum):
    DELIVERED = "delivered"  # Slack accepted it; the alerts topic has it (or said why not)
    PARKED = "parked"  # Slack refused it for good; the dead-letter topic has it
    FAILED = "failed"  # an unexpected error while handling it; its record stays held and is read again
    ABANDONED = "abandoned"  # given up unsent (shutdown, or its partition went to another instance)


@dataclass(eq=False, slots=True)
class PendingAlert:
    """An alert due and not yet delivered; identity-hashed so a ledger can hold a set of them."""

    ledger: PartitionLedger
    topic: str
    offset: int
    at: float  # event time (policy.event_time)
    alert: AlertEvent
    payload: bytes
    cancelled: bool = False  # set by the main thread; the worker then drops it at the next chance


Completion = tuple[PendingAlert, Result]


class SenderStopped(RuntimeError):
    """The worker thread ended while the service was running: alerts would pile up unsent."""


class AlertSender:
    def __init__(
        self,
        *,
        client: WebhookClient,
        store: CooldownStore,
        dead_letters: DeadLetters,
        producer: Producer,
        metrics: AlerterMetrics,
        completions: queue.SimpleQueue[Completion],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._client = client
        self._store = store
        self._dead_letters = dead_letters
        self._producer = producer
        self._metrics = metrics
        self._completions = completions
        self._clock = clock
        self._queue: queue.SimpleQueue[PendingAlert | None] = queue.SimpleQueue()
        self._stop = threading.Event()
        self._throttle = Throttle(10.0)
        self._failures = 0
        self._thread = threading.Thread(target=self._run, name="slack-sender", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def submit(self, alert: PendingAlert) -> None:
        self._queue.put(alert)

    def alive(self) -> bool:
        """False once the worker thread has ended (stopped, or died); True before it starts."""
        return self._thread.ident is None or self._thread.is_alive()

    def stop(self, timeout: float) -> None:
        """Interrupt retries and end the worker; an unfinished alert is reported abandoned."""
        self._stop.set()
        if self._thread.ident is None:
            return  # never started
        self._queue.put(None)
        self._thread.join(timeout)

    def _run(self) -> None:
        while True:
            try:
                item = self._queue.get(timeout=0.1)
            except queue.Empty:
                self._serve_producer()
                continue
            if item is None:
                return
            if item.cancelled:
                continue
            if self._stop.is_set():
                self._completions.put((item, Result.ABANDONED))
                continue
            try:
                self._send(item)
            except Exception as exc:  # noqa: BLE001 - one alert fails, never the worker (see the module docstring)
                self._failed(item, exc)
            self._serve_producer()

    def _serve_producer(self) -> None:
        try:
            self._producer.poll(0)
        except Exception as exc:  # noqa: BLE001 - a delivery callback's error must not end the worker
            self._report("poll", "a producer callback failed (%s)", _describe(exc))

    def _failed(self, item: PendingAlert, exc: Exception) -> None:
        self._metrics.alerts_failed.labels("error").inc()
        self._report(
            "failed",
            "could not handle an alert (%s); its record stays uncommitted and is read again after a restart",
            _describe(exc),
            device=item.alert.device_id,
        )
        self._completions.put((item, Result.FAILED))

    def _report(self, key: str, message: str, cause: str, device: str | None = None) -> None:
        """One line per kind of failure and interval, with a count of those not logged."""
        suppressed = self._throttle.allow(key)
        if suppressed is not None:
            log.error(
                message + "%s",
                cause,
                f" ({suppressed} similar not logged)" if suppressed else "",
                extra={} if device is None else {"device": device},
            )

    def _send(self, item: PendingAlert) -> None:
        attempt = self._client.deliver(
            item.payload,
            wait=lambda delay: self._wait(item, delay),
            on_retry=lambda failed, delay: self._retrying(item, failed, delay),
        )
        if attempt.outcome is Outcome.ACCEPTED:
            self._metrics.alerts_sent.inc()
            self._metrics.alert_latency.observe(max(0.0, self._clock() - item.alert.timestamp.timestamp()))
            if self._failures:
                log.info("Slack accepts alerts again after %d failed attempts", self._failures)
                self._failures = 0
            log.info(
                "alert delivered to Slack",
                extra={"device": item.alert.device_id, "partition": item.ledger.partition, "offset": item.offset},
            )
            try:
                self._store.record(
                    item.alert, item.at, item.ledger.partition, lambda error: self._recorded(item, error)
                )
            except Exception as exc:  # noqa: BLE001 - Slack has it: sending it again would repeat it
                self._record_lost(item, _describe(exc))
                self._completions.put((item, Result.DELIVERED))
        elif attempt.outcome is Outcome.REJECTED:
            self._metrics.alerts_failed.labels("rejected").inc()
            log.error(
                "Slack refused the alert (%s): check SLACK_WEBHOOK_URL and SLACK_CHANNEL; "
                "the alert is parked on the dead-letter topic %s",
                attempt.describe(),
                self._dead_letters.topic,
                extra={"device": item.alert.device_id, "status": attempt.status},
            )
            self._dead_letters.alert(
                item.alert.device_id.encode(),
                encode(item.alert),
                f"slack rejected the alert: {attempt.describe()}",
                (item.topic, item.ledger.partition, item.offset),
                lambda error: self._completions.put((item, Result.PARKED if error is None else Result.FAILED)),
            )
        else:
            self._completions.put((item, Result.ABANDONED))

    def _recorded(self, item: PendingAlert, error: KafkaError | None) -> None:
        if error is not None:
            self._record_lost(item, error.str())
        self._completions.put((item, Result.DELIVERED))

    def _record_lost(self, item: PendingAlert, cause: str) -> None:
        if self._throttle.allow("record") is not None:
            log.error(
                "could not record a delivered alert on %s (%s): its cooldown will not survive a restart",
                self._store.topic,
                cause,
                extra={"device": item.alert.device_id},
            )

    def _wait(self, item: PendingAlert, delay: float) -> bool:
        """Sleep before a retry; False (give up) on shutdown or when the alert's partition was taken away."""
        deadline = time.monotonic() + delay
        while not item.cancelled:
            left = deadline - time.monotonic()
            if left <= 0:
                return True
            if self._stop.wait(min(left, 0.1)):
                return False
        return False

    def _retrying(self, item: PendingAlert, attempt: Attempt, delay: float) -> None:
        self._failures += 1
        self._metrics.alert_retries.labels(attempt.reason).inc()
        suppressed = self._throttle.allow(f"retry-{attempt.reason}")
        if suppressed is not None:
            log.warning(
                "Slack did not accept an alert (%s); retrying in %.1fs%s",
                attempt.describe(),
                delay,
                f" ({suppressed} similar failures not logged)" if suppressed else "",
                extra={"device": item.alert.device_id, "reason": attempt.reason},
            )


def _describe(exc: Exception) -> str:
    """A Kafka error by its own text; anything else by type and message (never a traceback)."""
    error = exc.args[0] if isinstance(exc, KafkaException) and exc.args else None
    return error.str() if isinstance(error, KafkaError) else f"{type(exc).__name__}: {exc}"
