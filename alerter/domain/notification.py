"""What the service hands to the notifier, and what comes back: plain values, safe to pass between threads.

A notification carries everything a receiver needs to render it (its
`kind` and the alert) and everything the service needs to settle it later
(the readings partition and offset it came from, the event time the policy
decided on). It never points back at mutable state.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from shared.models import AlertEvent


class Kind(Enum):
    """What a notification says; each receiver renders each kind its own way."""

    ALERT = "alert"  # a device ran above the threshold


@dataclass(frozen=True, slots=True)
class Notification:
    id: int  # unique within the process; how a result finds its notification again
    kind: Kind
    alert: AlertEvent
    partition: int  # readings partition of the record that raised it
    offset: int  # that record's offset: held (not committed) until the notification is settled
    at: float  # the event time the policy decided on (policy.event_time), epoch seconds


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
