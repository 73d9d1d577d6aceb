"""One log line per change of state of a GPU or an endpoint, however many ticks it stays that way."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable


class StateLog:
    """Remembers each target's state ("ok" or a short reason); logs only when it changes."""

    def __init__(self, log: logging.Logger, what: str, clock: Callable[[], float] = time.monotonic) -> None:
        self._log = log
        self._what = what
        self._clock = clock
        self._states: dict[str, tuple[str, float]] = {}

    def ok(self, target: str, detail: str = "") -> None:
        previous = self._states.get(target)
        now = self._clock()
        if previous is None:
            self._log.info(
                "%s %s found%s", self._what, target, f" ({detail})" if detail else "",
                extra={"target": target},
            )
        elif previous[0] != "ok":
            self._log.info(
                "%s %s is back after %.0fs%s", self._what, target, now - previous[1],
                f" ({detail})" if detail else "",
                extra={"target": target, "down_s": round(now - previous[1], 1)},
            )
        if previous is None or previous[0] != "ok":
            self._states[target] = ("ok", now)

    def failed(self, target: str, reason: str, detail: str) -> bool:
        """Record a failure; True (and one warning) when this is a change of state."""
        previous = self._states.get(target)
        if previous is not None and previous[0] == reason:
            return False
        self._states[target] = (reason, self._clock())
        self._log.warning(
            "%s %s: %s; the others keep publishing", self._what, target, detail,
            extra={"target": target, "reason": reason},
        )
        return True
