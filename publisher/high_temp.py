"""The original's `Published HIGH TEMP` lines, exact at normal rates and capped at fleet scale.

At 5 devices a second every hot reading gets its line, as in the Go
original. At 100,000 readings a second one line per hot reading would make
logging the bottleneck and drown everything else, so at most `limit` lines
are written per window and the rest are summed up in one line when the
window closes. The metric of hot readings counts them all either way.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

import numpy as np
import numpy.typing as npt

from publisher.simulator import Floats

log = logging.getLogger("publisher.high_temp")


class HighTempLog:
    """Logs hot readings, at most `limit` lines per `window` seconds plus one summary line."""

    def __init__(self, clock: Callable[[], float], limit: int = 20, window: float = 1.0) -> None:
        self._clock = clock
        self._limit = limit
        self._window = window
        self._window_start: float | None = None
        self._logged = 0
        self._suppressed = 0

    def record(self, device_ids: Sequence[str], temperatures: Floats, hot: npt.NDArray[np.intp]) -> None:
        """Log this tick's hot readings: `hot` indexes the devices above the threshold."""
        now = self._clock()
        if self._window_start is None or now - self._window_start >= self._window:
            self._close_window()
            self._window_start = now
        shown = hot[: max(0, self._limit - self._logged)]
        for index, temperature in zip(shown.tolist(), temperatures[shown].tolist(), strict=True):
            log.info(
                "Published HIGH TEMP: Device %s - %.2f°C", device_ids[index], temperature,
                extra={"device": device_ids[index], "temperature": temperature},
            )
        self._logged += len(shown)
        self._suppressed += len(hot) - len(shown)

    def _close_window(self) -> None:
        if self._suppressed:
            log.info(
                "Published HIGH TEMP: %d more readings above the threshold not logged (at most %d lines per %gs)",
                self._suppressed, self._limit, self._window,
                extra={"suppressed": self._suppressed},
            )
        self._logged = 0
        self._suppressed = 0

    def close(self) -> None:
        """Write the pending summary (at shutdown)."""
        self._close_window()
        self._window_start = None
