"""The one thread that talks to receivers: it posts notifications one at a time, in order, and reports each result.

Reading never waits for Slack: the service hands a notification over
(`submit`) and goes on consuming. This thread posts it through the receiver,
retrying what is worth retrying (alerter.receiver.deliver), and puts exactly
one `Result` per notification on the results queue, the only way anything
comes back. It touches no Kafka client and no service state: recording a
delivered alert, parking a refused one and moving offsets are the service's
job, on the thread that owns the Kafka clients. One thread keeps each
device's notifications in order and sends at the pace the receiver allows.

`cancel` is how a partition that moves away takes its notifications back:
none of them is posted after `cancel` returns, and it names the one being
posted at that moment, if any, so the service can wait for that result
before handing the partition over. An unexpected error while handling one
notification fails that one only (FAILED: its record stays held and is read
again after a restart); should the thread end anyway, `alive()` says so.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Collection
from typing import Protocol

from alerter.domain.notification import Notification, Result, Status
from alerter.metrics import AlerterMetrics
from alerter.receiver import Attempt, Outcome, Receiver, Retry, deliver
from shared.logs import Throttle

log = logging.getLogger(__name__)


class NotifierLike(Protocol):
    """What the service needs from a notifier (Notifier; tests use an in-memory one)."""

    def start(self) -> None: ...
    def submit(self, notification: Notification) -> None: ...
    def cancel(self, ids: Collection[int]) -> int | None: ...
    def alive(self) -> bool: ...
    def stop(self, timeout: float) -> None: ...


class Notifier:
    def __init__(
        self,
        receiver: Receiver,
        results: queue.SimpleQueue[Result],
        metrics: AlerterMetrics,
        retry: Retry,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._receiver = receiver
        self._results = results
        self._metrics = metrics
        self._retry = retry
        self._clock = clock
        self._inbox: queue.SimpleQueue[Notification | None] = queue.SimpleQueue()
        self._lock = threading.Lock()  # guards the three below, shared with the service's thread
        self._cancelled: set[int] = set()  # ids not yet finished that must not be posted (further)
        self._posting: int | None = None  # id whose post is under way
        self._taken = -1  # id of the last notification taken from the inbox (ids grow in submit order)
        self._wake = threading.Event()  # set by stop() and cancel(): a retry wait ends early
        self._stopping = threading.Event()
        self._throttle = Throttle(10.0)
        self._failures = 0  # failed attempts in a row, for the "accepts again" line
        self._thread = threading.Thread(target=self._run, name="notifier", daemon=True)

    # -- the service's side ----------------------------------------------------------------------

    def start(self) -> None:
        self._thread.start()

    def submit(self, notification: Notification) -> None:
        self._inbox.put(notification)

    def cancel(self, ids: Collection[int]) -> int | None:
        """None of these is posted from now on (each still gets a Result, ABANDONED unless its post was under
        way); returns the id among them whose post is under way, if any."""
        with self._lock:
            unfinished = self._taken if self._posting is not None else self._taken + 1
            self._cancelled.update(i for i in ids if i >= unfinished)  # the finished ones have their Result
            posting = self._posting if self._posting in self._cancelled else None
        self._wake.set()
        return posting

    def alive(self) -> bool:
        """False once the thread has ended (stopped, or died); True before it starts."""
        return self._thread.ident is None or self._thread.is_alive()

    def stop(self, timeout: float) -> None:
        """End retries and the thread; what was not posted is reported ABANDONED. A post under way is not cut
        short (its receiver's own timeout bounds it), so this waits up to `timeout` for it."""
        self._stopping.set()
        self._wake.set()
        if self._thread.ident is None:
            return
        self._inbox.put(None)
        self._thread.join(timeout)

    # -- the notifier thread ---------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            notification = self._inbox.get()
            if notification is None:
                return
            with self._lock:
                self._taken = notification.id
                if notification.id in self._cancelled or self._stopping.is_set():
                    self._cancelled.discard(notification.id)
                    skip = True
                else:
                    self._posting, skip = notification.id, False
            if skip:
                self._results.put(Result(notification, Status.ABANDONED))
                continue
            try:
                result = self._send(notification)
            except Exception as exc:  # noqa: BLE001 - one notification fails, never the thread (module docstring)
                result = self._failed(notification, exc)
            with self._lock:
                self._posting = None
                self._cancelled.discard(notification.id)
            self._results.put(result)

    def _send(self, notification: Notification) -> Result:
        attempt = deliver(
            lambda: self._receiver.post(notification),
            self._retry,
            name=self._receiver.name,
            wait=lambda delay: self._wait(notification, delay),
            on_retry=lambda failed, delay: self._retrying(notification, failed, delay),
        )
        device = notification.alert.device_id
        if attempt.outcome is Outcome.ACCEPTED:
            self._metrics.alerts_sent.inc()
            self._metrics.alert_latency.observe(max(0.0, self._clock() - notification.alert.timestamp.timestamp()))
            if self._failures:
                log.info("%s accepts alerts again after %d failed attempts", self._receiver.name, self._failures)
                self._failures = 0
            log.info(
                "alert delivered to %s",
                self._receiver.name,
                extra={"device": device, "partition": notification.partition, "offset": notification.offset},
            )
            return Result(notification, Status.DELIVERED)
        if attempt.outcome is Outcome.REJECTED:
            self._metrics.alerts_failed.labels("rejected").inc()
            log.error(
                "%s refused the alert (%s): %s; the alert is parked on the dead-letter topic",
                self._receiver.name,
                attempt.describe(),
                self._receiver.hint,
                extra={"device": device, "status": attempt.status},
            )
            reason = f"{self._receiver.name.lower()} rejected the alert: {attempt.describe()}"
            return Result(notification, Status.REJECTED, reason)
        return Result(notification, Status.ABANDONED)  # told to give up while retrying

    def _wait(self, notification: Notification, delay: float) -> bool:
        """Sleep before a retry; False (give up) on stop or when the notification was cancelled."""
        deadline = time.monotonic() + delay
        while True:
            with self._lock:
                if notification.id in self._cancelled:
                    return False
            left = deadline - time.monotonic()
            if self._stopping.is_set() or left <= 0:
                return not self._stopping.is_set()
            self._wake.wait(left)
            self._wake.clear()

    def _retrying(self, notification: Notification, attempt: Attempt, delay: float) -> None:
        self._failures += 1
        self._metrics.alert_retries.labels(attempt.reason).inc()
        suppressed = self._throttle.allow(f"retry-{attempt.reason}")
        if suppressed is not None:
            log.warning(
                "%s did not accept an alert (%s); retrying in %.1fs%s",
                self._receiver.name,
                attempt.describe(),
                delay,
                f" ({suppressed} similar failures not logged)" if suppressed else "",
                extra={"device": notification.alert.device_id, "reason": attempt.reason},
            )

    def _failed(self, notification: Notification, exc: Exception) -> Result:
        self._metrics.alerts_failed.labels("error").inc()
        suppressed = self._throttle.allow("failed")
        if suppressed is not None:
            log.error(
                "could not handle an alert (%s: %s); its record stays uncommitted and is read again after a "
                "restart%s",
                type(exc).__name__,
                exc,
                f" ({suppressed} similar not logged)" if suppressed else "",
                extra={"device": notification.alert.device_id},
            )
        return Result(notification, Status.FAILED)
