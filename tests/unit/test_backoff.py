"""The one backoff rule: exponential, capped, with equal jitter."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from shared.backoff import backoff


def test_backoff_doubles_per_failure_up_to_the_maximum() -> None:
    """With the jitter at its top, the waits are 0.25, 0.5, 1, then the 1.5 s maximum for good."""
    waits = [backoff(n, initial=0.25, maximum=1.5, rng=lambda: 1.0) for n in range(1, 7)]
    assert waits == [0.25, 0.5, 1.0, 1.5, 1.5, 1.5]


@given(st.integers(1, 10_000), st.floats(0.001, 10), st.floats(0.001, 600), st.floats(0, 1, exclude_max=True))
def test_equal_jitter_waits_between_half_and_all_of_the_ceiling(
    failures: int, initial: float, maximum: float, draw: float
) -> None:
    """Whatever the draw, the wait is at least half the ceiling (retries stay spaced) and never above it."""
    ceiling = min(maximum, initial * 2.0 ** min(failures - 1, 60))
    wait = backoff(failures, initial=initial, maximum=maximum, rng=lambda: draw)
    assert ceiling / 2 <= wait <= ceiling
