"""The original's `Published HIGH TEMP` lines: logged once the cluster acknowledged the reading, capped at scale.

The Go original logs a reading above 80 °C right after ProduceSync returned,
so a line means the reading is on the topic; ours is written when the sink
reports the reading acknowledged (publisher.acks), never when it was queued.
At 5 devices a second every hot reading gets its line. At 100,000 readings a
second one line per hot reading would make logging the bottleneck and drown
everything else, so at most `limit` lines are written per window and the rest
are summed up in one line when the window closes. The metric of hot readings
counts them all either way.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import NamedTuple

log = logging.getLogger("publisher.high_temp")
LINES_PER_WINDOW = 20


class HotReading(NamedTuple):
    """A published reading above the HIGH TEMP threshold, as the log line names it."""

    device_id: str
    temperature: float


def plural(count: int, word: str) -> str:
    """`1 reading`, `2 readings`: log lines never say "1 readings"."""
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


class HighTempLog:
    """Logs acknowledged hot readings, at most `limit` lines per `window` seconds plus one summary line."""

    def __init__(self, clock: Callable[[], float], limit: int = LINES_PER_WINDOW, window: float = 1.0) -> None:
        self._clock = clock
        self._limit = limit
        self._window = window
        self._window_start: float | None = None
        self._logged = 0
        self._suppressed = 0

    def record(self, readings: Sequence[HotReading], total: int | None = None) -> None:
        """Log these acknowledged hot readings, out of `total` acknowledged (the rest were counted, not named)."""
        total = len(readings) if total is None else total
        if not total:
            return
        now = self._clock()
        if self._window_start is None or now - self._window_start >= self._window:
            self._close_window()
            self._window_start = now
        shown = readings[: max(0, self._limit - self._logged)]
        for device, temperature in shown:
            log.info(
                "Published HIGH TEMP: Device %s - %.2f°C", device, temperature,
                extra={"device": device, "temperature": temperature},
            )
        self._logged += len(shown)
        self._suppressed += total - len(shown)

    def _close_window(self) -> None:
        if self._suppressed:
            log.info(
                "Published HIGH TEMP: %s above the threshold not logged (at most %s per %gs)",
                plural(self._suppressed, "more reading"), plural(self._limit, "line"), self._window,
                extra={"suppressed": self._suppressed},
            )
        self._logged = 0
        self._suppressed = 0

    def close(self) -> None:
        """Write the pending summary (at shutdown)."""
        self._close_window()
        self._window_start = None
