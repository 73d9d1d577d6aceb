"""Alertmanager as a receiver: v2 alert payloads (pure), the resend policy (pure), a thin HTTP client, and the
Receiver the notifier drives (alerter.receiver: one attempt per `post`; retries, backoff and Retry-After are
decided by `deliver` there, as for Slack).

Alertmanager forgets an alert at its `endsAt`, so a client must keep saying
that an alert still holds. Prometheus re-sends each active alert every
resend delay with `endsAt = evaluation time + 4 x delay` (two lost sends are
survived) and posts `endsAt = resolution time` once it is over. Our alerter is
event-driven, so the same contract reads:

- the first post of an alert (the policy raised it) says `endsAt = now + V`,
  with V = 4 x ALERTMANAGER_RESEND_INTERVAL, so it always fires at least once;
- while the alerter keeps seeing the condition (hot readings of that device,
  even those the cooldown keeps out of Slack), the alert is re-sent at most once
  per interval with `endsAt = last seen + V`;
- once nothing is seen, re-sends stop and Alertmanager resolves the alert by
  itself at most V after the last hot reading; a `resolved` notice posts
  `endsAt = now` at once.

`endsAt` is always explicit, so Alertmanager's `resolve_timeout` never applies
to our alerts. `startsAt` is the reading's event time (never later than the
first post), so re-sends and resolutions merge into the same alert.

The URL may carry credentials (`http://user:pass@host/` or a token in the
query): it is held by `Endpoint` (alerter.settings, with the other
ALERTMANAGER_* settings), and no log line, exception text or metric carries
more than `Endpoint.shown` (scheme, host, port and path).

A receiver is owned by one thread (its notifier's); nothing here connects on import.
"""

from __future__ import annotations

import contextlib
import logging
import math
import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from enum import Enum
from typing import Any, Final

import msgspec
import requests
from prometheus_client import CollectorRegistry, Counter, Gauge
from requests.adapters import HTTPAdapter

from alerter.adapters.http_answers import printable, retry_after, root_cause
from alerter.domain.notification import Backlog, Notification, Outlook, Resolution, Silence
from alerter.domain.notification import Kind as NotificationKind
from alerter.receiver import Attempt, Outcome, Retry, Sighting, deliver
from alerter.settings import VALIDITY_FACTOR, AlertmanagerSettings, Endpoint
from shared.logs import Throttle
from shared.models import AlertEvent

log = logging.getLogger(__name__)

MAX_BATCH: Final = 64  # alerts per POST, as Prometheus's notifier
BACKOFF_INITIAL: Final = 0.25  # seconds before the first retry of a post (ALERTMANAGER_BACKOFF_MAX caps the growth)
_BODY_READ: Final = 8192  # bytes of it read at most: a hostile peer cannot make us hold megabytes


# --- Payloads (pure) ------------------------------------------------------------------------------------------


class Kind(Enum):
    """An alert kind, named as the alerts topic's `kind` field; `resolved` is an endsAt, not a kind of its own."""

    CRITICAL = "critical"
    WARNING = "warning"
    FORECAST = "forecast"
    SILENT = "silent"

    @property
    def alertname(self) -> str:
        return _ALERTNAMES[self]

    @property
    def severity(self) -> str:
        return _SEVERITIES[self]


_ALERTNAMES: Final = {
    Kind.CRITICAL: "GpuTemperatureCritical",
    Kind.WARNING: "GpuTemperatureWarning",
    Kind.FORECAST: "GpuTemperatureForecast",
    Kind.SILENT: "GpuSilent",
}
_SEVERITIES: Final = {
    Kind.CRITICAL: "critical",
    Kind.WARNING: "warning",
    Kind.FORECAST: "warning",
    Kind.SILENT: "critical",
}
RESOLVED_KINDS: Final = (Kind.CRITICAL, Kind.WARNING, Kind.FORECAST)  # what a `resolved` notice ends
# The alerter's notification kinds, as Alertmanager alerts; a resolved notice is an endsAt on the kinds it ends.
KINDS: Final = {
    NotificationKind.CRITICAL: Kind.CRITICAL,
    NotificationKind.WARNING: Kind.WARNING,
    NotificationKind.FORECAST: Kind.FORECAST,
    NotificationKind.SILENT: Kind.SILENT,
}

AlertKey = tuple[Kind, str, str, str]  # kind, device, host, model: one Alertmanager alert (one fingerprint)


@dataclass(frozen=True, slots=True)
class GpuAlert:
    """One of our Alertmanager alerts: who (kind and GPU), what it says, and since when."""

    kind: Kind
    device_id: str
    host_name: str
    gpu_model: str
    temperature: float
    threshold: float
    starts_at: float  # epoch seconds: the event time of the reading that raised it
    detail: str = ""  # one more sentence for the description (a forecast's ETA, a silence's length)

    @classmethod
    def from_event(cls, event: AlertEvent, kind: Kind, at: float | None = None, detail: str = "") -> GpuAlert:
        """From a delivered-alert record; `at` is the policy's event time (default: the reading's timestamp)."""
        return cls(
            kind,
            event.device_id,
            event.host_name,
            event.gpu_model,
            event.temperature,
            event.temperature_threshold,
            event.timestamp.timestamp() if at is None else at,
            detail,
        )

    @property
    def key(self) -> AlertKey:
        return (self.kind, self.device_id, self.host_name, self.gpu_model)


def alert_labels(alert: GpuAlert) -> dict[str, str]:
    """What identifies the alert (its fingerprint); empty values are left out, as Alertmanager would drop them."""
    values = {
        "alertname": alert.kind.alertname,
        "severity": alert.kind.severity,
        "device_id": alert.device_id,
        "host_name": alert.host_name,
        "gpu_model": alert.gpu_model,
    }
    return {name: _utf8(value) for name, value in values.items() if value}


def alert_annotations(alert: GpuAlert, resolved: bool) -> dict[str, str]:
    """`summary` and `description`, with the temperature and threshold."""
    where = alert.device_id + (f" on {alert.host_name}" if alert.host_name else "")
    model = f" ({alert.gpu_model})" if alert.gpu_model else ""
    temp, limit = f"{alert.temperature:.2f}°C", f"{alert.threshold:.2f}°C"
    if resolved and alert.kind is Kind.SILENT:
        summary, text = f"GPU {where} reports again", f"GPU {where}{model} reports again, at {temp}."
    elif resolved:
        summary = f"GPU {where} is back to {temp}"
        text = f"GPU {where}{model} is back to {temp}, below its threshold of {limit}."
    else:
        summary, text = _FIRING[alert.kind](where, model, temp, limit)
    if alert.detail:
        text = f"{text} {alert.detail}"
    return {"summary": _utf8(summary), "description": _utf8(text)}


_FIRING: Final[dict[Kind, Callable[[str, str, str, str], tuple[str, str]]]] = {
    Kind.CRITICAL: lambda where, model, temp, limit: (
        f"GPU {where} at {temp}, above {limit}",
        f"Temperature of {temp} detected on GPU {where}{model}, exceeding threshold of {limit}.",
    ),
    Kind.WARNING: lambda where, model, temp, limit: (
        f"GPU {where} at {temp}, above the warning threshold of {limit}",
        f"Temperature of {temp} on GPU {where}{model}, above the warning threshold of {limit}.",
    ),
    Kind.FORECAST: lambda where, model, temp, limit: (
        f"GPU {where} is heading for {limit}",
        f"GPU {where}{model} is at {temp} and expected to exceed its threshold of {limit}.",
    ),
    Kind.SILENT: lambda where, model, temp, _limit: (
        f"No readings from GPU {where}",
        f"GPU {where}{model} has stopped reporting; its last temperature was {temp}.",
    ),
}


def postable(alert: GpuAlert, ends_at: float, *, resolved: bool = False) -> dict[str, Any]:
    """A `postableAlert` of the v2 API; startsAt is held to at most endsAt, which Alertmanager requires."""
    return {
        "labels": alert_labels(alert),
        "annotations": alert_annotations(alert, resolved),
        "startsAt": rfc3339(min(alert.starts_at, ends_at)),
        "endsAt": rfc3339(ends_at),
    }


_LATEST: Final = 253402300799.0  # 9999-12-31T23:59:59Z


def rfc3339(epoch: float) -> str:
    """UTC with microseconds and `Z`; out-of-range or NaN times are held to 1970..9999."""
    moment = datetime.fromtimestamp(min(max(epoch, 0.0), _LATEST) if math.isfinite(epoch) else 0.0, UTC)
    return f"{moment:%Y-%m-%dT%H:%M:%S}.{moment.microsecond:06d}Z"


def _utf8(text: str) -> str:
    """Text that encodes as UTF-8 (a lone surrogate becomes `?`): Alertmanager refuses invalid UTF-8."""
    return text.encode("utf-8", "replace").decode("utf-8")


class InvalidAlert(ValueError):
    """A payload Alertmanager would refuse with 400; building one is our bug."""


_LABEL_NAME: Final = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
_FIELDS: Final = frozenset({"labels", "annotations", "startsAt", "endsAt", "generatorURL"})
_TIME: Final = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?(Z|[+-]\d\d:\d\d)", re.ASCII)


def check_postable(alert: Mapping[str, Any]) -> None:
    """The OpenAPI `postableAlert` shape plus Alertmanager's own checks (labels, UTF-8, start before end)."""
    for part in ("labels", "annotations"):
        pairs = alert.get(part, {})
        if not isinstance(pairs, Mapping) or (part == "labels" and not any(pairs.values())):
            raise InvalidAlert(f"{part}: expected an object of strings, with a non-empty label")
        for name, value in pairs.items():
            if not isinstance(name, str) or not _LABEL_NAME.fullmatch(name):
                raise InvalidAlert(f"{part}: invalid name {name!r}")
            if not isinstance(value, str) or not _encodes(value):
                raise InvalidAlert(f"{part}: {name} is not a UTF-8 string")
    times = [_time(alert, part) for part in ("startsAt", "endsAt")]
    if times[1] < times[0]:
        raise InvalidAlert("endsAt is before startsAt")
    unknown = set(alert) - _FIELDS
    if unknown:
        raise InvalidAlert(f"unknown fields {sorted(map(str, unknown))}")


def _time(alert: Mapping[str, Any], part: str) -> datetime:
    text = alert.get(part)
    moment = None
    if isinstance(text, str) and _TIME.fullmatch(text):
        with contextlib.suppress(ValueError):  # a month 13 or a day 32 passes the pattern
            moment = datetime.fromisoformat(text)
    if moment is None:
        raise InvalidAlert(f"{part}: expected an RFC 3339 time")
    return moment


def _encodes(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


# --- Resend policy (pure) -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Tracked:
    """An alert kept alive in Alertmanager: when its condition was last seen and last accepted (wall clock)."""

    alert: GpuAlert
    seen_at: float
    sent_at: float | None  # None: adopted from a sighting, never accepted yet
    fresh: bool  # seen since Alertmanager last accepted it


Book = Mapping[AlertKey, Tracked]


@dataclass(frozen=True, slots=True)
class Post:
    """One alert to post and the endsAt it carries."""

    alert: GpuAlert
    ends_at: float
    resolved: bool = False

    def payload(self) -> dict[str, Any]:
        return postable(self.alert, self.ends_at, resolved=self.resolved)


@dataclass(frozen=True, slots=True)
class ResendPolicy:
    """What to post when, as pure functions of (book, now); a book is never changed, a new one is returned.

    Times are the wall clock (Alertmanager's), not event time. A clock that
    steps back can neither stall re-sends nor shorten what Alertmanager holds
    (it keeps the later of two explicit endsAt).
    """

    interval: float

    @property
    def validity(self) -> float:
        return VALIDITY_FACTOR * self.interval

    def first(self, alert: GpuAlert, now: float) -> Post:
        """An attempt at the first post of an alert the policy raised: firing for V from this attempt."""
        return Post(alert, now + self.validity)

    def delivered(self, book: Book, alert: GpuAlert, now: float) -> dict[AlertKey, Tracked]:
        """Alertmanager accepted the first post: keep the alert alive (the start of a live one is kept)."""
        known = self._live(book, alert.key, now)
        if known is not None:
            alert = replace(alert, starts_at=min(alert.starts_at, known.alert.starts_at))
        return {**book, alert.key: Tracked(alert, now, now, fresh=False)}

    def seen(self, book: Book, alert: GpuAlert, now: float) -> dict[AlertKey, Tracked]:
        """The condition holds again (a hot reading, in cooldown or not); an alert not kept alive is adopted."""
        known = self._live(book, alert.key, now)
        if known is None:
            return {**book, alert.key: Tracked(replace(alert, starts_at=min(alert.starts_at, now)), now, None, True)}
        latest = replace(alert, starts_at=known.alert.starts_at)
        return {**book, alert.key: Tracked(latest, now, known.sent_at, fresh=True)}

    def due(self, book: Book, now: float, limit: int = MAX_BATCH) -> list[Post]:
        """Alerts seen since their last accepted post, an interval or more ago (or never), oldest first."""
        ready = sorted(
            (t for t in book.values() if (at := self._due_at(t, now)) is not None and at <= now),
            key=lambda t: -math.inf if t.sent_at is None else t.sent_at,
        )
        return [Post(t.alert, t.seen_at + self.validity) for t in ready[:limit]]

    def next_due(self, book: Book, now: float) -> float | None:
        """When the next re-send falls due (now or later); None when none will before another sighting."""
        times = [at for t in book.values() if (at := self._due_at(t, now)) is not None]
        return min(times, default=None)

    def _due_at(self, tracked: Tracked, now: float) -> float | None:
        if not tracked.fresh or now - tracked.seen_at > self.validity:
            return None  # nothing new to say, or too old to claim it still holds
        sent = tracked.sent_at
        if sent is None or now < sent:  # never accepted, or the clock stepped back
            return now
        return max(now, sent + self.interval)

    def sent(self, book: Book, posts: Iterable[Post], now: float) -> dict[AlertKey, Tracked]:
        """Alertmanager accepted (or refused for good) these re-sends: nothing new until seen again."""
        updated = dict(book)
        for post in posts:
            tracked = updated.get(post.alert.key)
            if tracked is not None:
                updated[post.alert.key] = replace(tracked, sent_at=now, fresh=False)
        return updated

    def expired(self, book: Book, now: float) -> dict[AlertKey, Tracked]:
        """Without alerts not seen for V: Alertmanager has resolved them, or will at their endsAt."""
        return {key: t for key, t in book.items() if now - t.seen_at <= self.validity}

    def resolution(
        self, book: Book, event: AlertEvent, at: float, now: float, kinds: Sequence[Kind] = RESOLVED_KINDS
    ) -> tuple[dict[AlertKey, Tracked], list[Post]]:
        """A `resolved` notice at event time `at`: endsAt on each of the device's alerts of `kinds`, none kept alive.

        Kinds not in the book (raised before a restart, or by another instance)
        are resolved too: for Alertmanager, ending an alert it does not have is a no-op.
        """
        ends_at = min(at, now)
        ending = {key: t for key, t in book.items() if t.alert.device_id == event.device_id and key[0] in kinds}
        resolving = {key: t.alert for key, t in ending.items()}
        for kind in kinds:
            alert = GpuAlert.from_event(event, kind, at=ends_at)
            resolving.setdefault(alert.key, alert)
        posts = [
            Post(replace(alert, temperature=event.temperature, threshold=event.temperature_threshold), ends_at, True)
            for alert in resolving.values()
        ]
        return {key: t for key, t in book.items() if key not in ending}, posts

    def _live(self, book: Book, key: AlertKey, now: float) -> Tracked | None:
        tracked = book.get(key)
        return tracked if tracked is not None and now - tracked.seen_at <= self.validity else None


# --- HTTP client ----------------------------------------------------------------------------------------------

REASONS: Final = ("accepted", "invalid", "refused", "timeout", "connection", "server_error", "rate_limited", "error")
_encoder = msgspec.json.Encoder()


class AlertmanagerMetrics:
    """Counters in the alerter's registry, so its /metrics shows how Alertmanager is faring."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        r = registry or CollectorRegistry()
        self.posts = Counter(
            "gpu_alerter_alertmanager_posts",
            "Attempts to POST to Alertmanager's /api/v2/alerts, by result (invalid: refused with 400, a bug of "
            "ours; refused: another 4xx or a redirect, check ALERTMANAGER_URL; the others are retried).",
            ["result"],
            registry=r,
        )
        self.alerts = Counter(
            "gpu_alerter_alertmanager_alerts",
            "Alerts Alertmanager accepted, by what the post said (firing, resent, resolved).",
            ["what"],
            registry=r,
        )
        self.kept_alive = Gauge(
            "gpu_alerter_alertmanager_alerts_kept_alive", "Alerts this alerter keeps firing by re-sending.", registry=r
        )
        for reason in REASONS:
            self.posts.labels(reason)
        for what in ("firing", "resent", "resolved"):
            self.alerts.labels(what)


class AlertmanagerClient:
    """Posts a batch of alerts to /api/v2/alerts, one attempt per `post`, classified as accepted, worth a retry
    (timeout, connection error, 5xx, 408, 429, an unreadable answer; a 429 or 503 with its `Retry-After`) or
    refused for good (400/422: our payload; another 4xx or a redirect: the URL or credentials). Retries are not
    its business: alerter.receiver.deliver decides when to try again. Every attempt is counted once in
    `gpu_alerter_alertmanager_posts_total`.
    """

    def __init__(
        self,
        endpoint: Endpoint,
        *,
        timeout: float,
        metrics: AlertmanagerMetrics | None = None,
        session: requests.Session | None = None,
    ) -> None:
        self.endpoint = endpoint
        self.metrics = metrics or AlertmanagerMetrics()
        self._timeout = (min(timeout, 5.0), timeout)  # (connect, read)
        self._session = session or requests.Session()
        for prefix in ("http://", "https://"):
            self._session.mount(prefix, HTTPAdapter(max_retries=0))

    def __repr__(self) -> str:
        return f"AlertmanagerClient({self.endpoint.shown!r})"

    def close(self) -> None:
        self._session.close()

    def post(self, alerts: Sequence[Mapping[str, Any]]) -> Attempt:
        """One attempt with a batch of postable alerts, counted by its result."""
        attempt = self._post(alerts)
        self.metrics.posts.labels(attempt.reason).inc()
        return attempt

    def _post(self, alerts: Sequence[Mapping[str, Any]]) -> Attempt:
        try:
            for alert in alerts:
                check_postable(alert)
            body = _encoder.encode(list(alerts))
        except (InvalidAlert, TypeError, UnicodeEncodeError) as exc:
            return Attempt(Outcome.REJECTED, "invalid", error=f"{type(exc).__name__}: {exc}")
        try:
            response = self._session.post(
                self.endpoint.reveal(),
                data=body,
                headers={"Content-Type": "application/json"},
                timeout=self._timeout,
                allow_redirects=False,
                stream=True,  # the answer's body is read by _classify, at most _BODY_READ bytes
            )
        except requests.Timeout as exc:
            return Attempt(Outcome.RETRY, "timeout", error=type(exc).__name__)
        except requests.ConnectionError as exc:
            return Attempt(Outcome.RETRY, "connection", error=root_cause(exc))
        except Exception as exc:  # noqa: BLE001 - one failed attempt is one line and a retry, never a crash
            return Attempt(Outcome.RETRY, "error", error=type(exc).__name__)
        try:
            return self._classify(response)
        except Exception as exc:  # noqa: BLE001 - an unreadable answer (a broken stream) is retried
            return Attempt(Outcome.RETRY, "error", response.status_code, error=type(exc).__name__)
        finally:
            response.close()

    def _classify(self, response: requests.Response) -> Attempt:
        status = response.status_code
        if 200 <= status < 300:
            return Attempt(Outcome.ACCEPTED, "accepted", status)
        raw = response.raw.read(_BODY_READ, decode_content=True) or b""
        body = printable(self.endpoint.redact(raw.decode("utf-8", "replace")))  # redacted before it is cut
        if status in (429, 503):
            reason = "rate_limited" if status == 429 else "server_error"
            return Attempt(Outcome.RETRY, reason, status, body, retry_after(response))
        if status >= 500 or status == 408:
            return Attempt(Outcome.RETRY, "server_error", status, body)
        return Attempt(Outcome.REJECTED, "invalid" if status in (400, 422) else "refused", status, body)



# --- Receiver: the policy and the client, for its notifier thread ---------------------------------------------


class AlertmanagerReceiver:
    """A Receiver (alerter.receiver) that also keeps its alerts alive: the first post of each alert comes through
    `post` (one attempt; the notifier retries), sightings through `sighted`, and the notifier calls `resend` once
    `next_resend_in()` has passed. Each failure of its own (a re-send, a resolution) is one throttled line.

    Owned by one thread, its notifier's.
    """

    name = "Alertmanager"
    hint = "check ALERTMANAGER_URL and its credentials (a 400 is a payload the alerter should not have built)"

    def __init__(
        self,
        client: AlertmanagerClient,
        policy: ResendPolicy,
        retry: Retry | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._client = client
        self._policy = policy
        self._retry = retry or Retry(initial=BACKOFF_INITIAL, maximum=30.0)
        self._metrics = client.metrics
        self._clock = clock
        self._book: dict[AlertKey, Tracked] = {}
        self._failures = 0  # failed re-send batches in a row
        self._next_try = -math.inf  # wall clock: re-sends back off after a failed batch
        self._throttle = Throttle(60.0)

    @property
    def book(self) -> Book:
        return self._book

    @property
    def retry(self) -> Retry:
        """How its notifier waits between tries of a post (ALERTMANAGER_BACKOFF_MAX)."""
        return self._retry

    # -- the Receiver interface, and KeepsAlive ----------------------------------------------------

    def post(self, notification: Notification) -> Attempt:
        """One attempt at the first post of the alert the policy raised (startsAt: its event time), or, for a
        resolved notice, at ending the alerts it names (endsAt: its event time)."""
        if notification.kind is NotificationKind.RESOLVED:
            return self.post_resolution(notification)
        kind = KINDS.get(notification.kind)
        if kind is None:  # a notification kind added without its Alertmanager alert: fails that one (FAILED)
            raise ValueError(f"no Alertmanager alert for notifications of kind {notification.kind.value}")
        detail = _detail(notification)
        return self.post_alert(GpuAlert.from_event(notification.alert, kind, at=notification.at, detail=detail))

    def post_resolution(self, notification: Notification) -> Attempt:
        """One attempt at posting endsAt for the device's alerts a resolved notice ends (none kept alive after)."""
        ends = notification.detail.ends if isinstance(notification.detail, Resolution) else ()
        kinds = [KINDS[kind] for kind in ends if kind in KINDS] or list(RESOLVED_KINDS)
        book, posts = self._policy.resolution(self._book, notification.alert, notification.at, self._clock(), kinds)
        attempt = self._client.post([p.payload() for p in posts])
        if attempt.outcome is Outcome.ACCEPTED:
            self._metrics.alerts.labels("resolved").inc(len(posts))
            self._keep(book)
        return attempt

    def sighted(self, sighting: Sighting) -> None:
        """A hot reading of the device, alerted or kept quiet by the cooldown: its alert still holds."""
        self.observe(GpuAlert.from_event(sighting.alert, KINDS.get(sighting.kind, Kind.CRITICAL), at=sighting.at))

    def next_resend_in(self) -> float | None:
        """Seconds until `resend` has something to do (0: now); None until something is observed."""
        now = self._clock()
        self._keep(self._policy.expired(self._book, now))
        due = self._policy.next_due(self._book, now)
        return None if due is None else max(due, self._next_try) - now

    def resend(self) -> Attempt | None:
        """One attempt at a batch of due re-sends (a failure backs the next batch off); None when none are due."""
        now = self._clock()
        posts = self._policy.due(self._book, now) if now >= self._next_try else []
        if not posts:
            return None
        attempt = self._client.post([p.payload() for p in posts])
        if attempt.outcome is Outcome.RETRY:
            self._failures += 1
            delay = self._retry.delay(attempt, self._failures)
            self._next_try = now + delay
            self._warn(attempt, f"re-sending {len(posts)} alert(s) in {delay:.2f}s")
            return attempt
        self._failures, self._next_try = 0, -math.inf
        if attempt.outcome is Outcome.ACCEPTED:
            self._metrics.alerts.labels("resent").inc(len(posts))
        else:
            self._refused(attempt, len(posts))  # not posted again before they are seen anew
        self._keep(self._policy.sent(self._book, posts, self._clock()))
        return attempt

    # -- building blocks -------------------------------------------------------------------------

    def post_alert(self, alert: GpuAlert) -> Attempt:
        """One attempt at the first post of `alert`, with endsAt fresh from this attempt's time."""
        attempt = self._client.post([self._policy.first(alert, self._clock()).payload()])
        if attempt.outcome is Outcome.ACCEPTED:
            self._metrics.alerts.labels("firing").inc()
            self._keep(self._policy.delivered(self._book, alert, self._clock()))
        return attempt

    def deliver(
        self,
        alert: GpuAlert,
        *,
        wait: Callable[[float], bool],
        on_retry: Callable[[Attempt, float], None] = lambda _attempt, _delay: None,
    ) -> Attempt:
        """`post_alert` until accepted, refused, or `wait` says stop (alerter.receiver.deliver); a refusal is logged."""
        attempt = deliver(
            lambda: self.post_alert(alert), self._retry, name=self.name, wait=wait, on_retry=self._retrying(on_retry)
        )
        if attempt.outcome is Outcome.REJECTED:
            self._refused(attempt, 1)
        return attempt

    def observe(self, alert: GpuAlert) -> None:
        """The alert's condition holds again (a hot reading of the device, whatever the cooldown says)."""
        self._keep(self._policy.seen(self._book, alert, self._clock()))

    def resolve(
        self,
        event: AlertEvent,
        at: float,
        *,
        wait: Callable[[float], bool],
        kinds: Sequence[Kind] = RESOLVED_KINDS,
        on_retry: Callable[[Attempt, float], None] = lambda _attempt, _delay: None,
    ) -> Attempt:
        """A device's alerts are over (a `resolved` notice at event time `at`): endsAt posted, retried."""
        book, posts = self._policy.resolution(self._book, event, at, self._clock(), kinds)
        self._keep(book)
        payloads = [p.payload() for p in posts]
        attempt = deliver(
            lambda: self._client.post(payloads), self._retry, name=self.name, wait=wait,
            on_retry=self._retrying(on_retry),
        )
        if attempt.outcome is Outcome.ACCEPTED:
            self._metrics.alerts.labels("resolved").inc(len(posts))
        elif attempt.outcome is Outcome.REJECTED:
            self._refused(attempt, len(posts))
        return attempt

    def _keep(self, book: dict[AlertKey, Tracked]) -> None:
        self._book = book
        self._metrics.kept_alive.set(len(book))

    def _retrying(self, on_retry: Callable[[Attempt, float], None]) -> Callable[[Attempt, float], None]:
        def retrying(attempt: Attempt, delay: float) -> None:
            self._warn(attempt, f"retrying in {delay:.2f}s")
            on_retry(attempt, delay)

        return retrying

    def _refused(self, attempt: Attempt, alerts: int) -> None:
        suppressed = self._throttle.allow(attempt.reason)
        if suppressed is not None:
            hint = "a bug in the alerter" if attempt.reason == "invalid" else "check ALERTMANAGER_URL"
            log.error(
                "Alertmanager at %s refused %d alert(s) (%s): %s; they are dropped%s",
                self._client.endpoint.shown,
                alerts,
                attempt.describe(),
                hint,
                f" ({suppressed} similar not logged)" if suppressed else "",
            )

    def _warn(self, attempt: Attempt, then: str) -> None:
        suppressed = self._throttle.allow(f"retry-{attempt.reason}")
        if suppressed is not None:
            log.warning(
                "Alertmanager at %s did not accept alerts (%s); %s%s",
                self._client.endpoint.shown,
                attempt.describe(),
                then,
                f" ({suppressed} similar not logged)" if suppressed else "",
            )


def _detail(notification: Notification) -> str:
    """The sentence a notification's detail adds to its description."""
    detail = notification.detail
    if isinstance(detail, Outlook):
        return f"Expected to reach {detail.threshold:.1f}°C in about {detail.eta:.0f}s ({detail.rate:+.1f}°C/min)."
    if isinstance(detail, Silence):
        return f"No readings for {detail.silent_for:.0f}s."
    if isinstance(detail, Backlog):
        return (
            f"While the alerter was behind: {detail.count} readings above the threshold over"
            f" {detail.last - detail.first:.0f}s, peak {detail.peak:.2f}°C."
        )
    return ""


def build_receiver(
    settings: AlertmanagerSettings, registry: CollectorRegistry | None = None
) -> AlertmanagerReceiver | None:
    """The receiver the settings ask for (its metrics in `registry`), or None when ALERTMANAGER_URL is unset."""
    if settings.endpoint is None:
        return None
    client = AlertmanagerClient(settings.endpoint, timeout=settings.timeout, metrics=AlertmanagerMetrics(registry))
    retry = Retry(initial=min(BACKOFF_INITIAL, settings.backoff_max), maximum=settings.backoff_max)
    return AlertmanagerReceiver(client, ResendPolicy(settings.resend_interval), retry)
