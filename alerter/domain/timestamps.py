"""A Kafka record's timestamp, as far as it can be trusted: missing or absurd ones become the arrival time.

The producer chooses a record's timestamp (CreateTime), so it is input like any
other. The policy measures cooldowns on event time clamped to within
MAX_CLOCK_SKEW of this timestamp (alerter.domain.policy.event_time); a
timestamp that is missing (-1), negative, zero, further in the future than any
clock difference explains, or older than any backlog could be, would make that
clamp meaningless (a device stamping -1 alerted five times in a second), so
such a record is taken to have been written when it arrived.
"""

from __future__ import annotations

from typing import Final

FUTURE_TOLERANCE: Final = 900.0  # seconds a producer's clock may run ahead of ours (unsynchronised hosts included)
PAST_LIMIT: Final = 30 * 24 * 3600.0  # seconds: far beyond any retention a backlog could come from (default 7 days)
NOT_AVAILABLE: Final = 0  # confluent_kafka.TIMESTAMP_NOT_AVAILABLE


def record_time(kind: int, millis: int, arrival: float) -> float:
    """The record's timestamp in epoch seconds, or `arrival` (our clock when it was read) when it is not usable."""
    if kind == NOT_AVAILABLE or millis <= 0:
        return arrival
    stamped = millis / 1000
    if stamped > arrival + FUTURE_TOLERANCE or stamped < arrival - PAST_LIMIT:
        return arrival
    return stamped
