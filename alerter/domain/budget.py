"""The global alert budget: at most so many alerts posted one by one per minute, the rest summed up in one message.

A flood of distinct hot device ids (a broken fleet, a hostile producer) would
otherwise queue behind one Slack-paced sender for hours, and real alerts with
it. Windows are fixed and start with the first alert after a quiet spell:
within one, the first `per_window` alerts are admitted, later ones are held
back; when the window ends, what was held goes out as one summary. Pure: the
caller passes the time (monotonic seconds).
"""

from __future__ import annotations

from dataclasses import dataclass, field

WINDOW = 60.0  # seconds


@dataclass
class AlertBudget:
    per_window: int
    window: float = WINDOW
    _start: float | None = field(default=None, init=False)
    _used: int = field(default=0, init=False)

    def admit(self, now: float) -> bool:
        """True to post an alert now; False to hold it back for the summary at `window_end`."""
        if self._start is None or now >= self._start + self.window:
            self._start, self._used = now, 0
        if self._used < self.per_window:
            self._used += 1
            return True
        return False

    def window_end(self) -> float | None:
        """When the current window ends (a summary of what it held back is due then); None before the first alert."""
        return None if self._start is None else self._start + self.window
