"""The threads that talk to receivers: one per receiver, each posting its notifications in order, one result each.

Reading never waits for a receiver: the service hands a notification over
(`submit`) and goes on consuming. `Fanout` gives it to the `Notifier` of
every configured receiver (Slack, Alertmanager); each posts it through its
receiver, retrying what is worth retrying (alerter.receiver.deliver), so a
receiver that is down holds back only its own queue. When every receiver has
answered, `Fanout` puts exactly one combined `Result` on the results queue,
the only way anything comes back:

- every receiver accepted, or some accepted and the others refused for good:
  DELIVERED (the cooldown starts; each refusal's reason comes along, so the
  alert is also parked on the dead-letter topic). A receiver that refuses
  never holds the others back, and one that accepted is never asked twice;
- every receiver refused: REJECTED (parked; the cooldown still starts, so a
  revoked webhook is not asked again for every hot reading);
- any receiver gave up unsent (shutdown, partition moved) or failed: the
  record stays held and is read again, so each receiver gets the alert at
  least once (one that had accepted may get it twice).

No thread here touches a Kafka client or service state: recording, parking
and moving offsets happen on the thread that owns the Kafka clients.

`cancel` is how a partition that moves away takes its notifications back:
none of them is posted after `cancel` returns (a post under way finishes and
reports). An unexpected error while handling one notification fails that one
only (FAILED: its record stays held); should a thread end anyway, `alive()`
says so. A receiver that refuses REFUSALS_UNTIL_UNREADY alerts in a row makes
`accepting()` false (the instance reports not ready) until it accepts one.

Two optional duties per receiver (alerter.receiver): with an AlertBudget, the
notifier posts at most that many alerts a window one by one and holds the rest
back for one summary at the window's end (held-back alerts count as delivered
only if the summary is accepted); for a KeepsAlive receiver it passes on
sightings and calls its re-sends when they fall due.
"""

from __future__ import annotations

import logging
import math
import queue
import threading
import time
from collections.abc import Callable, Collection, Sequence
from typing import Final, Protocol, TypeVar

from alerter.domain.budget import AlertBudget
from alerter.domain.notification import Notification, Result, Status
from alerter.metrics import AlerterMetrics
from alerter.receiver import Attempt, HeldBack, KeepsAlive, Outcome, Receiver, Retry, Sighting, Summarising, deliver
from shared.logs import Throttle

log = logging.getLogger(__name__)

REFUSALS_UNTIL_UNREADY: Final = 3  # refusals in a row (no acceptance between) that make the instance not ready
SIGHTINGS_SETTLE: Final = 0.1  # seconds: a burst of sightings is taken in before re-sends are looked at
T = TypeVar("T")


class NotifierLike(Protocol):
    """What the service needs from its notifiers (Fanout; tests use an in-memory one)."""

    @property
    def observing(self) -> bool:
        """Whether any receiver wants sightings (then `observe` is worth calling)."""
        ...

    def start(self) -> None: ...
    def submit(self, notification: Notification) -> None: ...
    def observe(self, sightings: Sequence[Sighting]) -> None: ...
    def cancel(self, ids: Collection[int]) -> int | None: ...
    def alive(self) -> bool: ...
    def accepting(self) -> bool: ...
    def stop(self, timeout: float) -> None: ...


class ResultSink(Protocol):
    def put(self, result: Result) -> None: ...


class _Wake:
    """An inbox item that only wakes the thread (a window with alerts held back has begun)."""


_WAKE: Final = _Wake()


class Notifier:
    """One receiver's thread. `counted`: this receiver's deliveries, retries and refusals are the ones counted in
    the alerter's alert metrics (the first receiver's; Alertmanager's own posts are counted by its client too)."""

    def __init__(
        self,
        receiver: Receiver,
        results: ResultSink,
        metrics: AlerterMetrics,
        retry: Retry,
        clock: Callable[[], float] = time.time,
        *,
        budget: AlertBudget | None = None,
        counted: bool = True,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        if budget is not None and not isinstance(receiver, Summarising):
            raise TypeError(f"{receiver.name} cannot post summaries, so it cannot have an alert budget")
        self._receiver = receiver
        self._results = results
        self._metrics = metrics
        self._retry = retry
        self._clock = clock
        self._monotonic = monotonic
        self._budget = budget
        self._counted = counted
        self._keeper = receiver if isinstance(receiver, KeepsAlive) else None
        self.observing = self._keeper is not None
        self._inbox: queue.SimpleQueue[Notification | Sighting | _Wake | None] = queue.SimpleQueue()
        self._lock = threading.Lock()  # guards the fields below, shared with the service's thread
        self._cancelled: set[int] = set()  # ids not yet finished that must not be posted (further)
        self._posting: int | None = None  # id whose post is under way (of a summary: one of its alerts)
        self._taken = -1  # id of the last notification taken from the inbox (ids grow in submit order)
        self._held: list[Notification] = []  # over the budget, waiting for the summary
        self._held_since: float | None = None  # wall clock when the first of them was held back
        self._summarising: set[int] = set()  # ids in the summary being posted
        self._summary_cancelled: set[int] = set()  # those of them cancelled meanwhile
        self._wake = threading.Event()  # set by stop() and cancel(): a retry wait ends early
        self._stopping = threading.Event()
        self._throttle = Throttle(10.0)
        self._failures = 0  # failed attempts in a row, for the "accepts again" line
        self._refusals = 0  # refusals in a row
        self._thread = threading.Thread(target=self._run, name=f"notifier-{receiver.name.lower()}", daemon=True)
        metrics.receiver_refusing.labels(receiver.name.lower()).set(0)

    @property
    def name(self) -> str:
        return self._receiver.name

    # -- the service's side ----------------------------------------------------------------------

    def start(self) -> None:
        self._thread.start()

    def submit(self, notification: Notification) -> None:
        if self._budget is not None:
            with self._lock:
                if not self._budget.admit(self._monotonic()):
                    if not self._held:
                        self._held_since = self._clock()
                    self._held.append(notification)
                    self._metrics.alerts_held_back.inc()
                    held = len(self._held)
                else:
                    held = 0
            if held:
                if held == 1:
                    self._inbox.put(_WAKE)  # the thread now has a window end to wait for
                return
        self._inbox.put(notification)

    def observe(self, sightings: Sequence[Sighting]) -> None:
        if self._keeper is not None:
            for sighting in sightings:
                self._inbox.put(sighting)

    def cancel(self, ids: Collection[int]) -> int | None:
        """None of these is posted from now on (each still gets a Result, ABANDONED unless its post was under
        way); returns the id among them whose post is under way, if any."""
        wanted = set(ids)
        with self._lock:
            dropped = [n for n in self._held if n.id in wanted]
            self._held = [n for n in self._held if n.id not in wanted]
            summarised = wanted & self._summarising
            self._summary_cancelled |= summarised
            unfinished = self._taken if self._posting is not None else self._taken + 1
            queued = {n.id for n in dropped} | summarised
            self._cancelled.update(i for i in wanted - queued if i >= unfinished)  # the finished have their Result
            posting = self._posting if self._posting in self._cancelled else None
            if posting is None and summarised:
                posting = min(summarised)
        for notification in dropped:
            self._results.put(Result(notification, Status.ABANDONED))
        self._wake.set()
        return posting

    def alive(self) -> bool:
        """False once the thread has ended (stopped, or died); True before it starts."""
        return self._thread.ident is None or self._thread.is_alive()

    def accepting(self) -> bool:
        """False once the receiver refused REFUSALS_UNTIL_UNREADY alerts in a row; true again when it accepts one."""
        return self._refusals < REFUSALS_UNTIL_UNREADY

    def stop(self, timeout: float) -> None:
        """End retries and the thread; what was not posted is reported ABANDONED. A post under way is not cut
        short (its receiver's own timeout bounds it), so this waits up to `timeout` for it."""
        self.stopping()
        self.join(timeout)

    def stopping(self) -> None:
        """The first half of `stop`, so that several notifiers stop together."""
        self._stopping.set()
        self._wake.set()
        if self._thread.ident is not None:
            self._inbox.put(None)

    def join(self, timeout: float) -> None:
        if self._thread.ident is not None:
            self._thread.join(timeout)

    # -- the notifier thread ---------------------------------------------------------------------

    def _run(self) -> None:
        due_at = 0.0  # monotonic time to look at due work (a summary, a re-send) next
        while True:
            wait = due_at - self._monotonic()
            try:
                item = self._inbox.get(timeout=max(0.0, wait)) if wait < math.inf else self._inbox.get()
            except queue.Empty:
                item = _WAKE
            if item is None:
                self._abandon_held()
                return
            if isinstance(item, Notification):
                self._handle(item)
                due_at = 0.0
            elif isinstance(item, Sighting):
                self._sighted(item)
                due_at = min(due_at, self._monotonic() + SIGHTINGS_SETTLE)  # many come at once: look once
            else:
                due_at = 0.0
            if self._monotonic() >= due_at:
                due_at = self._due()

    def _sighted(self, sighting: Sighting) -> None:
        keeper = self._keeper
        if keeper is not None:
            self._guarded("sighting", lambda: keeper.sighted(sighting))

    def _due(self) -> float:
        """Post the summary and the re-send that fell due; returns when (monotonic) to look again."""
        if self._stopping.is_set():
            return math.inf
        with self._lock:
            end = self._budget.window_end() if self._budget is not None and self._held else None
        if end is not None and self._monotonic() >= end:
            self._summarise()
            end = None
        next_at = math.inf if end is None else end
        keeper = self._keeper
        if keeper is not None:
            due = self._guarded("re-send", keeper.next_resend_in)
            if due is not None and due <= 0:
                attempt = self._guarded("re-send", keeper.resend)
                if attempt is not None:
                    self._answered(attempt)
                due = self._guarded("re-send", keeper.next_resend_in)
            if due is not None:
                next_at = min(next_at, self._monotonic() + max(due, 0.0))
        return next_at

    def _handle(self, notification: Notification) -> None:
        with self._lock:
            self._taken = notification.id
            if notification.id in self._cancelled or self._stopping.is_set():
                self._cancelled.discard(notification.id)
                skip = True
            else:
                self._posting, skip = notification.id, False
        if skip:
            self._results.put(Result(notification, Status.ABANDONED))
            return
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
            wait=lambda delay: self._wait(lambda: notification.id in self._cancelled, delay),
            on_retry=lambda failed, delay: self._retrying(notification.alert.device_id, failed, delay),
        )
        device = notification.alert.device_id
        self._answered(attempt)
        if attempt.outcome is Outcome.ACCEPTED:
            if self._counted:
                self._metrics.alerts_sent.inc()
                self._metrics.alert_latency.observe(max(0.0, self._clock() - notification.alert.timestamp.timestamp()))
            log.info(
                "alert delivered to %s",
                self._receiver.name,
                extra={"device": device, "partition": notification.partition, "offset": notification.offset},
            )
            return Result(notification, Status.DELIVERED)
        if attempt.outcome is Outcome.REJECTED:
            return Result(notification, Status.REJECTED, self._refused(attempt, device))
        return Result(notification, Status.ABANDONED)  # told to give up while retrying

    def _summarise(self) -> None:
        """Post one summary of the alerts held back; each gets the summary's result."""
        with self._lock:
            batch, self._held = self._held, []
            since, self._held_since = self._held_since or self._clock(), None
            self._summarising = {n.id for n in batch}
        held = HeldBack(tuple(n.alert for n in batch), since, self._budget.per_window if self._budget else 0)
        receiver = self._receiver
        try:
            attempt = deliver(
                lambda: _post_summary(receiver, held),
                self._retry,
                name=self._receiver.name,
                wait=lambda delay: self._wait(lambda: self._summarising <= self._summary_cancelled, delay),
                on_retry=lambda failed, delay: self._retrying(f"{len(batch)} held back", failed, delay),
            )
        except Exception as exc:  # noqa: BLE001 - the summary fails, never the thread
            results = [self._failed(n, exc) for n in batch]
        else:
            results = self._summarised(batch, attempt)
        with self._lock:
            self._summarising, self._summary_cancelled = set(), set()
        for result in results:
            self._results.put(result)

    def _summarised(self, batch: list[Notification], attempt: Attempt) -> list[Result]:
        self._answered(attempt)
        devices = len({n.alert.device_id for n in batch})
        if attempt.outcome is Outcome.ACCEPTED:
            self._metrics.alert_summaries.labels("accepted").inc()
            if self._counted:
                self._metrics.alerts_sent.inc(len(batch))
            log.warning(
                "%d alerts of %d devices over the alert budget (%d a minute) were summed up in one message to %s",
                len(batch),
                devices,
                self._budget.per_window if self._budget else 0,
                self._receiver.name,
            )
            return [Result(n, Status.DELIVERED) for n in batch]
        if attempt.outcome is Outcome.REJECTED:
            self._metrics.alert_summaries.labels("rejected").inc()
            reason = self._refused(attempt, f"a summary of {len(batch)} alerts")
            return [Result(n, Status.REJECTED, reason) for n in batch]
        return [Result(n, Status.ABANDONED) for n in batch]

    def _abandon_held(self) -> None:
        with self._lock:
            batch, self._held = self._held, []
        for notification in batch:
            self._results.put(Result(notification, Status.ABANDONED))

    def _answered(self, attempt: Attempt) -> None:
        """Track refusals in a row (readiness) and failures in a row (the "accepts again" line)."""
        name = self._receiver.name
        if attempt.outcome is Outcome.ACCEPTED:
            if self._failures:
                log.info("%s accepts alerts again after %d failed attempts", name, self._failures)
                self._failures = 0
            if self._refusals >= REFUSALS_UNTIL_UNREADY:
                log.info("%s accepts alerts again; ready", name)
            self._refusals = 0
            self._metrics.receiver_refusing.labels(name.lower()).set(0)
        elif attempt.outcome is Outcome.REJECTED:
            self._refusals += 1
            if self._refusals == REFUSALS_UNTIL_UNREADY:
                self._metrics.receiver_refusing.labels(name.lower()).set(1)
                log.error(
                    "%s refused %d alerts in a row: not ready until it accepts one again (%s)",
                    name,
                    self._refusals,
                    self._receiver.hint,
                )

    def _refused(self, attempt: Attempt, what: str) -> str:
        """Count and log (at most once per 10 s) a refusal; returns the reason the parked copy carries."""
        if self._counted:
            self._metrics.alerts_failed.labels("rejected").inc()
        suppressed = self._throttle.allow("rejected")
        if suppressed is not None:
            log.error(
                "%s refused the alert (%s): %s; the alert is parked on the dead-letter topic and its device's "
                "cooldown kept%s",
                self._receiver.name,
                attempt.describe(),
                self._receiver.hint,
                f" ({suppressed} similar not logged)" if suppressed else "",
                extra={"device": what, "status": attempt.status},
            )
        return f"{self._receiver.name.lower()} rejected the alert: {attempt.describe()}"

    def _wait(self, cancelled: Callable[[], bool], delay: float) -> bool:
        """Sleep before a retry; False (give up) on stop or once `cancelled()` holds."""
        deadline = time.monotonic() + delay
        while True:
            with self._lock:
                if cancelled():
                    return False
            left = deadline - time.monotonic()
            if self._stopping.is_set() or left <= 0:
                return not self._stopping.is_set()
            self._wake.wait(left)
            self._wake.clear()

    def _retrying(self, what: str, attempt: Attempt, delay: float) -> None:
        self._failures += 1
        if self._counted:
            self._metrics.alert_retries.labels(attempt.reason).inc()
        suppressed = self._throttle.allow(f"retry-{attempt.reason}")
        if suppressed is not None:
            log.warning(
                "%s did not accept an alert (%s); retrying in %.1fs%s",
                self._receiver.name,
                attempt.describe(),
                delay,
                f" ({suppressed} similar failures not logged)" if suppressed else "",
                extra={"device": what, "reason": attempt.reason},
            )

    def _failed(self, notification: Notification, exc: Exception) -> Result:
        if self._counted:
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

    def _guarded(self, what: str, call: Callable[[], T]) -> T | None:
        """A receiver's own duty (a sighting, a re-send): an error there is one throttled line, never the thread."""
        try:
            return call()
        except Exception as exc:  # noqa: BLE001 - see the docstring
            suppressed = self._throttle.allow(f"duty-{what}")
            if suppressed is not None:
                log.error(  # noqa: TRY400 - one line, no traceback
                    "%s: a %s failed (%s: %s)%s",
                    self._receiver.name,
                    what,
                    type(exc).__name__,
                    exc,
                    f" ({suppressed} similar not logged)" if suppressed else "",
                )
            return None


class Fanout:
    """Every notification to every receiver's Notifier; one combined Result per notification (module docstring)."""

    def __init__(self, results: queue.SimpleQueue[Result], metrics: AlerterMetrics) -> None:
        self._results = results
        self._metrics = metrics
        self.notifiers: list[Notifier] = []
        self._lock = threading.Lock()
        self._answers: dict[int, dict[int, Result]] = {}  # notification id -> receiver index -> its result

    def add(self, receiver: Receiver, retry: Retry, budget: AlertBudget | None = None) -> Notifier:
        """A receiver and its thread; the first one added is the one the alert metrics count."""
        slot = _Slot(self, len(self.notifiers))
        notifier = Notifier(receiver, slot, self._metrics, retry, budget=budget, counted=not self.notifiers)
        self.notifiers.append(notifier)
        return notifier

    @property
    def observing(self) -> bool:
        return any(n.observing for n in self.notifiers)

    def start(self) -> None:
        if not self.notifiers:
            raise ValueError("no receiver: at least one is required")
        for notifier in self.notifiers:
            notifier.start()

    def submit(self, notification: Notification) -> None:
        for notifier in self.notifiers:
            notifier.submit(notification)

    def observe(self, sightings: Sequence[Sighting]) -> None:
        for notifier in self.notifiers:
            notifier.observe(sightings)

    def cancel(self, ids: Collection[int]) -> int | None:
        """As Notifier.cancel, for every receiver: returns an id whose post is under way at one of them, if any."""
        posting = [n.cancel(ids) for n in self.notifiers]
        return next((p for p in posting if p is not None), None)

    def alive(self) -> bool:
        return all(n.alive() for n in self.notifiers)

    def accepting(self) -> bool:
        return all(n.accepting() for n in self.notifiers)

    def stop(self, timeout: float) -> None:
        for notifier in self.notifiers:
            notifier.stopping()
        deadline = time.monotonic() + timeout
        for notifier in self.notifiers:
            notifier.join(max(0.0, deadline - time.monotonic()))

    def answer(self, index: int, result: Result) -> None:
        """The result of the `index`th receiver (from its thread); the combined one goes out once all answered."""
        if len(self.notifiers) == 1:
            self._results.put(result)
            return
        with self._lock:
            answers = self._answers.setdefault(result.notification.id, {})
            answers[index] = result
            if len(answers) < len(self.notifiers):
                return
            del self._answers[result.notification.id]
        self._results.put(combine([answers[i] for i in sorted(answers)]))


class _Slot:
    """Where one receiver's Notifier reports: its place in the Fanout."""

    def __init__(self, fanout: Fanout, index: int) -> None:
        self._fanout = fanout
        self._index = index

    def put(self, result: Result) -> None:
        self._fanout.answer(self._index, result)


def _post_summary(receiver: Receiver, held: HeldBack) -> Attempt:
    if not isinstance(receiver, Summarising):  # Notifier.__init__ checked it
        raise TypeError(f"{receiver.name} cannot post summaries")
    return receiver.post_summary(held)


def combine(answers: Sequence[Result]) -> Result:
    """The receivers' results for one notification, as one (module docstring)."""
    notification = answers[0].notification
    statuses = {a.status for a in answers}
    refusals = "; ".join(a.reason for a in answers if a.status is Status.REJECTED)
    for status in (Status.FAILED, Status.ABANDONED):
        if status in statuses:
            return Result(notification, status)
    if Status.DELIVERED in statuses:
        return Result(notification, Status.DELIVERED, refusals)
    return Result(notification, Status.REJECTED, refusals)
