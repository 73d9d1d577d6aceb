"""When the next tick is due: slots on a monotonic clock, so ticks never drift and never burst.

Tick k is due at `origin + k * interval`. Computing each deadline from the
origin, instead of sleeping `interval` after each tick, keeps the rate exact
however long each tick takes. A tick that ends after the next slot has passed
skips the missed slots and waits for the first future one, like Go's
time.Ticker dropping ticks for a slow receiver, instead of firing the missed
ones back to back. Pure arithmetic: the caller reads the clock.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class NextTick:
    slot: int  # index of the slot the next tick runs in
    delay: float  # seconds to wait from `now` until that slot
    skipped: int  # slots passed while the last tick ran (0 when it finished in time)


def next_tick(origin: float, interval: float, slot: int, now: float) -> NextTick:
    """The slot after `slot`, or the first one still ahead of `now` if the tick overran."""
    if interval <= 0:
        return NextTick(slot + 1, 0.0, 0)
    due = slot + 1
    deadline = origin + due * interval
    if now <= deadline:
        return NextTick(due, deadline - now, 0)
    first_ahead = math.floor((now - origin) / interval) + 1
    return NextTick(first_ahead, max(0.0, origin + first_ahead * interval - now), first_ahead - due)
