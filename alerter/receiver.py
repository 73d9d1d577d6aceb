"""What the notifier drives: a receiver posts a notification once per call and says whether another try is worth it.

A receiver (Slack, Alertmanager) only renders and posts: one `post` is one
attempt, classified as accepted, worth a retry (timeout, connection error,
5xx, 429 with its `Retry-After`) or refused for good. How long to wait and
when to give up is decided in one place, `deliver`, for every receiver and
for the start-up notice alike.

Two optional abilities, which the notifier looks for:
- `Summarising`: the receiver can post one summary of alerts held back by the
  alert budget (Slack, whose pace a flood would otherwise set);
- `KeepsAlive`: the receiver must hear that a condition still holds and be
  called to re-send on its own schedule (Alertmanager forgets an alert that
  is not re-sent); the notifier feeds it sightings and asks when it is due.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import Final, Protocol, runtime_checkable

from alerter.domain.notification import Kind, Notification
from shared.backoff import backoff
from shared.models import AlertEvent

log = logging.getLogger(__name__)

RETRY_AFTER_MAX: Final = 300.0  # a longer Retry-After is taken as a broken header: wait this long, then ask again


class Outcome(Enum):
    ACCEPTED = "accepted"
    RETRY = "retry"  # worth another try: timeout, connection error, 5xx, 429
    REJECTED = "rejected"  # refused for good (4xx other than 429): a configuration error


@dataclass(frozen=True)
class Attempt:
    outcome: Outcome
    reason: str  # a metric label: accepted, timeout, connection, server_error, rate_limited, rejected,
    # invalid_url, error (anything else that failed)
    status: int | None = None
    body: str = ""
    retry_after: float | None = None  # seconds the receiver asked us to wait (429)
    error: str = ""  # exception type for transport failures; never the URL, never the exception's text

    def describe(self) -> str:
        if self.status is not None:
            text = f"HTTP {self.status}"
            return f"{text} {self.body}" if self.body else text
        return f"{self.reason} ({self.error})" if self.error else self.reason


class Receiver(Protocol):
    """Somewhere notifications go. `name` appears in log lines ("Slack did not accept an alert ..."), `hint` in
    the line that reports a refusal (what to check)."""

    name: str
    hint: str

    def post(self, notification: Notification) -> Attempt: ...


@dataclass(frozen=True, slots=True)
class Sighting:
    """The alert's condition still holds: a hot reading seen, alerted or not (the cooldown may keep it quiet), or,
    for a silent alert, a device still silent when the partition's devices were looked at."""

    alert: AlertEvent
    at: float  # its event time (a silence: the partition's clock), epoch seconds
    kind: Kind = Kind.CRITICAL  # the alert it keeps holding (a warning, with WARNING_THRESHOLD; a silent alert)


@dataclass(frozen=True, slots=True)
class HeldBack:
    """Alerts held back by the alert budget, for one summary message."""

    alerts: tuple[AlertEvent, ...]
    since: float  # wall-clock time the first of them was held back, epoch seconds
    budget: int  # alerts a minute posted one by one (ALERT_BUDGET_PER_MINUTE)


@runtime_checkable
class Summarising(Protocol):
    """A receiver that can post one summary of held-back alerts (one attempt per call)."""

    def post_summary(self, held: HeldBack) -> Attempt: ...


@runtime_checkable
class KeepsAlive(Protocol):
    """A receiver with re-sends of its own: told of sightings, asked when it is due, called when it is."""

    def sighted(self, sighting: Sighting) -> None: ...
    def next_resend_in(self) -> float | None: ...
    def resend(self) -> Attempt | None: ...


@dataclass(frozen=True)
class Retry:
    """Waits between tries: exponential with equal jitter (shared.backoff) from `initial` to `maximum`."""

    initial: float
    maximum: float
    rng: Callable[[], float] = random.random

    def delay(self, attempt: Attempt, failures: int) -> float:
        """What `attempt` asks (Retry-After, within [initial, RETRY_AFTER_MAX]), else the backoff."""
        if attempt.retry_after is None:
            return backoff(failures, initial=min(self.initial, self.maximum), maximum=self.maximum, rng=self.rng)
        if attempt.retry_after > RETRY_AFTER_MAX:
            return RETRY_AFTER_MAX
        return max(attempt.retry_after, min(self.initial, self.maximum))  # 0 or a past date must not spin


def deliver(
    post: Callable[[], Attempt],
    retry: Retry,
    *,
    name: str,
    wait: Callable[[float], bool],
    on_retry: Callable[[Attempt, float], None] = lambda _attempt, _delay: None,
    attempts: int | None = None,
) -> Attempt:
    """Post until accepted or refused, or `attempts` tries; `wait(delay)` sleeps and returns False to give up.
    `name` (the receiver's) goes into the one warning about an absurd Retry-After."""
    failures = 0
    while True:
        attempt = post()
        if attempt.outcome is not Outcome.RETRY:
            return attempt
        failures += 1
        if attempts is not None and failures >= attempts:
            return attempt
        delay = retry.delay(attempt, failures)
        if attempt.retry_after is not None and attempt.retry_after > RETRY_AFTER_MAX:
            log.warning(
                "%s asked to wait %.0fs before retrying (Retry-After); waiting %.0fs instead",
                name,
                attempt.retry_after,
                RETRY_AFTER_MAX,
            )
        on_retry(attempt, delay)
        if not wait(delay):
            return attempt
