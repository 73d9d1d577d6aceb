"""What the service hands to the notifier, and what comes back: plain values, safe to pass between threads.

A notification carries everything a receiver needs to render it (its
`kind`, the reading it is about as an AlertEvent, and a `detail` for the kinds
that say more than a temperature: a forecast, a backlog, a silence, what a
resolution ends) and everything the service needs to settle it later (the
readings partition and offset it came from, the event time the policy decided
on). It never points back at mutable state.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import Enum

from shared.models import AlertEvent


class Kind(Enum):
    """What a notification says; each receiver renders each kind its own way. The values are the alerts topic's
    `kind` field (and alerter.alertmanager.Kind's, where resolved is an endsAt rather than a kind)."""

    CRITICAL = "critical"  # above the critical threshold (TEMPERATURE_THRESHOLD, or the GPU's own)
    WARNING = "warning"  # above WARNING_THRESHOLD, at or below the critical one
    FORECAST = "forecast"  # below the critical threshold, its trend expected to cross it within FORECAST_HORIZON
    RESOLVED = "resolved"  # what `Resolution.ends` names is over
    SILENT = "silent"  # no readings for SILENCE_AFTER
    ALERT = "critical"  # an alias of CRITICAL: its name before there were other kinds


TEMPERATURE_KINDS = (Kind.CRITICAL, Kind.WARNING, Kind.FORECAST)  # what a temperature resolution ends


@dataclass(frozen=True, slots=True)
class Outlook:
    """A forecast: where the device's fitted trend is heading."""

    threshold: float  # °C: the critical threshold it is expected to reach
    eta: float  # seconds from the reading to the expected crossing
    rate: float  # °C per minute at the reading
    level: float  # °C of the fitted curve at the reading


@dataclass(frozen=True, slots=True)
class Backlog:
    """Hot readings folded into one critical alert because they were far behind real time when read."""

    first: float  # event time of the first hot reading folded
    last: float  # event time of the last one
    peak: float  # °C, the hottest (the notification's alert is that reading)
    count: int  # hot readings folded


@dataclass(frozen=True, slots=True)
class Silence:
    """A device that stopped reporting."""

    last_seen: float  # event time of its last reading
    silent_for: float  # seconds without a reading when the silence was noticed


@dataclass(frozen=True, slots=True)
class Resolution:
    """What a resolved notice ends, and since when the condition has been over."""

    ends: tuple[Kind, ...]  # TEMPERATURE_KINDS (it stayed cool), or (SILENT,) (it reports again)
    since: float  # event time it went cool, or of its last reading before the silence
    below: float  # °C it stayed below (the resolve level); nan for a silence that ended


Detail = Outlook | Backlog | Silence | Resolution | None


@dataclass(frozen=True, slots=True)
class Notification:
    id: int  # unique within the process; how a result finds its notification again
    kind: Kind
    alert: AlertEvent  # the reading it is about (for a backlog: the hottest; for a silence: the last one)
    partition: int  # readings partition of the record that raised it
    offset: int  # that record's offset: held (not committed) until the notification is settled
    at: float  # the event time the policy decided on (policy.event_time), epoch seconds
    detail: Detail = None


@dataclass(frozen=True, slots=True)
class Recorded:
    """A delivered notification as read back from the alerts topic."""

    kind: Kind
    at: float  # the event time it was raised at (the record's timestamp)
    ends: tuple[Kind, ...] = ()  # for RESOLVED: what it ended
    temperature: float = math.nan  # °C of the reading it was about


class Status(Enum):
    DELIVERED = "delivered"  # the receiver accepted it: record it on the alerts topic, start the cooldown
    REJECTED = "rejected"  # every receiver refused it for good: park it on the dead-letter topic (cooldown kept)
    FAILED = "failed"  # an unexpected error while handling it: its record stays held, read again after a restart
    ABANDONED = "abandoned"  # given up unsent (shutdown, or its partition moved): its record stays held


@dataclass(frozen=True, slots=True)
class Result:
    notification: Notification
    status: Status
    reason: str = ""  # REJECTED, or DELIVERED while another receiver refused: why, one line (the parked copy's)
