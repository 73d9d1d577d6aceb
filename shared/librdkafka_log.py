"""librdkafka's own log lines in Python logging: a starting cluster's transient states at INFO, once; repeats throttled.

confluent-kafka hands each librdkafka line to the `logger` of the client's
config (served by poll). Two kinds need care:
- a cluster that is still starting answers "Coordinator load in progress" or
  "not available" for a moment and librdkafka retries by itself: that is
  expected, so it is one INFO line per kind, not a WARNING on every start;
- librdkafka repeats a complaint on every reconnect attempt: each kind of line
  (its text with the numbers masked) goes through once per interval, followed
  by a count of the ones left out.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from typing import Final

from shared.logs import Throttle

LOG_EVERY: Final = 10.0  # seconds between two lines of the same kind
# Transient states of a cluster that is starting (or electing), which librdkafka retries on its own.
TRANSIENT: Final = (
    "Coordinator load in progress",
    "Coordinator not available",
    "Leader not available",
    "Not coordinator",
)
_NUMBERS = re.compile(r"\d+")


class LibrdkafkaLines(logging.Filter):
    """Installed on a service's librdkafka logger: see the module docstring."""

    def __init__(self, every: float = LOG_EVERY, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self._every = every
        self._throttle = Throttle(every, clock)
        self._transient_seen: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        transient = next((kind for kind in TRANSIENT if kind in message), None)
        if transient is not None:
            if transient in self._transient_seen:
                return False
            self._transient_seen.add(transient)
            record.levelno, record.levelname = logging.INFO, logging.getLevelName(logging.INFO)
            record.msg, record.args = f"{message} (expected while the cluster starts; logged once)", ()
            return True
        suppressed = self._throttle.allow(_NUMBERS.sub("#", message))
        if suppressed is None:
            return False
        if suppressed:
            left_out = f"{suppressed} more like it not logged in the last {self._every:g}s"
            record.msg, record.args = f"{message} ({left_out})", ()
        return True


def librdkafka_logger(name: str) -> logging.Logger:
    """The logger `name` (e.g. "alerter.librdkafka") with the filter installed once, for clients' `logger` config."""
    logger = logging.getLogger(name)
    if not any(isinstance(f, LibrdkafkaLines) for f in logger.filters):
        logger.addFilter(LibrdkafkaLines())
    return logger
