"""How long to wait before the next try: the one backoff rule of every retry loop in the project.

Exponential with *equal jitter*: the ceiling doubles from `initial` up to
`maximum`, and the wait is drawn uniformly from the upper half of it. Half
the ceiling is always waited, so retries stay spaced however unlucky the
draw; the other half is random, so clients that failed together do not
retry in lockstep. (Full jitter would draw from the whole ceiling, down to
zero.)
"""

from __future__ import annotations

import random
from collections.abc import Callable

_MAX_DOUBLINGS = 60  # 2**60 times any sane initial wait is past every maximum: the ceiling is reached


def backoff(failures: int, *, initial: float, maximum: float, rng: Callable[[], float] = random.random) -> float:
    """Seconds to wait after `failures` failures in a row (1 for the first); `rng()` draws from [0, 1)."""
    ceiling = min(maximum, initial * 2.0 ** min(max(failures, 1) - 1, _MAX_DOUBLINGS))
    return ceiling * (0.5 + 0.5 * rng())
