"""One log line when a broker goes down and one when it is back, from librdkafka's periodic statistics.

librdkafka reports connection failures again for every reconnect attempt and
never says when a broker recovers; its statistics (every STATS_INTERVAL_MS)
carry each broker's connection state, so comparing two reports gives exactly
the transitions an operator wants to see, however long the outage lasts.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any, Final

import msgspec

log = logging.getLogger(__name__)

STATS_INTERVAL_MS: Final = 1_000  # also how late a HIGH TEMP line may follow its ack at full speed
_UP: Final = frozenset({"UP", "UPDATE"})
_IDLE: Final = "INIT"  # known but not connected: librdkafka has nothing to send there


class BrokerWatch:
    """Feed it each statistics report (`stats_cb`); it logs brokers that went down or came back.

    A broker that was up is down when it reports a connecting or failed
    state, or when it vanishes from the report (with every broker gone,
    librdkafka forgets them and starts over from the bootstrap list). It is
    back when it reappears connected, or idle (known, nothing to send to it).
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._up: set[str] = set()
        self._down_since: dict[str, float] = {}

    def update(self, stats_json: str) -> None:
        try:
            stats: Any = msgspec.json.decode(stats_json)
            states = {
                str(name): str(broker["state"])
                for name, broker in stats["brokers"].items()
                if int(broker.get("nodeid", -1)) >= 0  # not the bootstrap entries
            }
        except (msgspec.DecodeError, KeyError, TypeError, ValueError, AttributeError):
            log.debug("unreadable librdkafka statistics ignored")
            return
        now = self._clock()
        for name in sorted(self._up - states.keys()):
            self._went_down(name, "gone from the cluster metadata", now)
        for name, state in sorted(states.items()):
            since = self._down_since.get(name)
            if since is not None and (state in _UP or state == _IDLE):
                del self._down_since[name]
                log.info(
                    "Kafka broker %s is back after %.0fs (%s)", name, now - since,
                    "connected" if state in _UP else "idle: nothing to send to it yet",
                    extra={"broker": name, "down_s": round(now - since, 1), "state": state},
                )
            if state in _UP:
                self._up.add(name)
            elif state == _IDLE:
                self._up.discard(name)
            elif name in self._up:
                self._went_down(name, f"state {state}", now)

    def _went_down(self, name: str, why: str, now: float) -> None:
        self._up.discard(name)
        self._down_since[name] = now
        log.warning(
            "Kafka broker %s is down (%s); readings wait in the buffer", name, why,
            extra={"broker": name, "reason": why},
        )

    def down(self) -> list[str]:
        """Brokers that went down and are not back."""
        return sorted(self._down_since)
