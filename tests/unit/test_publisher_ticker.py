"""Tick scheduling on a monotonic clock: exact slots, no drift, skipped slots instead of bursts."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from publisher.ticker import next_tick


def test_ticks_land_on_slots_however_long_each_takes() -> None:
    """With ticks of varying length under the interval, every tick starts exactly on origin + k*interval."""
    origin, interval, now, slot = 1000.0, 0.25, 1000.0, 0
    starts = []
    for k in range(400):
        starts.append(now)
        now += interval * (0.1 + 0.8 * ((k * 37) % 10) / 10)  # the tick's work
        following = next_tick(origin, interval, slot, now)
        assert following.skipped == 0
        slot, now = following.slot, now + following.delay
    assert starts == pytest.approx([origin + k * interval for k in range(400)], abs=1e-9)


def test_overrun_skips_to_the_next_future_slot() -> None:
    """A tick that runs 2.5 intervals skips the two slots it missed and waits for the third, no burst."""
    following = next_tick(origin=0.0, interval=1.0, slot=4, now=4.0 + 2.5)
    assert following.slot == 7
    assert following.skipped == 2
    assert following.delay == pytest.approx(0.5)


def test_barely_late_tick_skips_one_slot() -> None:
    """Finishing just after the next slot skips that slot rather than firing it late."""
    following = next_tick(origin=0.0, interval=1.0, slot=0, now=1.001)
    assert (following.slot, following.skipped) == (2, 1)
    assert following.delay == pytest.approx(0.999)


def test_zero_interval_means_no_waiting_and_no_overruns() -> None:
    """INTERVAL_MS=0 runs ticks back to back and never reports an overrun."""
    following = next_tick(origin=0.0, interval=0.0, slot=9, now=12345.0)
    assert (following.slot, following.delay, following.skipped) == (10, 0.0, 0)


@given(
    origin=st.floats(0, 1e6),
    interval=st.floats(1e-3, 100),
    slot=st.integers(0, 10_000),
    late=st.floats(0, 1000),
)
def test_next_slot_is_ahead_and_within_one_interval(origin: float, interval: float, slot: int, late: float) -> None:
    """The next tick is never in the past, never more than one interval away, and skipped counts the gap exactly."""
    now = origin + slot * interval + late * interval
    following = next_tick(origin, interval, slot, now)
    deadline = origin + following.slot * interval
    tolerance = 1e-9 * max(1.0, abs(now))
    assert following.delay >= 0
    assert following.delay <= interval + tolerance
    assert math.isclose(now + following.delay, deadline, rel_tol=1e-12, abs_tol=tolerance)
    assert following.slot > slot
    assert following.skipped == following.slot - slot - 1
