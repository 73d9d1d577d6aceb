"""What the Kafka clients say about the cluster: outages, fatal errors, and everything else as rate-limited lines.

Every client's `error_cb` comes here; librdkafka calls it inside poll and
consume, so on the service's thread. An outage (all brokers down) makes the
instance unready until something shows the cluster answers again (a record,
a commit, a metadata probe); a fatal error makes the service stop.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from confluent_kafka import KafkaError

from shared.kafka import error_text
from shared.logs import Throttle

log = logging.getLogger(__name__)


class ClusterWatch:
    def __init__(self, topic: str, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._topic = topic
        self._monotonic = monotonic
        self._throttle = Throttle(10.0)
        self.outage_since: float | None = None  # monotonic time the last outage began, None when reachable
        self.fatal: KafkaError | None = None  # set once a client is unusable

    def healthy(self) -> bool:
        return self.outage_since is None and self.fatal is None

    def error(self, error: KafkaError, client: str = "consumer") -> None:
        """The `error_cb` of every client (and consumer errors that come as messages)."""
        if error.fatal() or error.code() == KafkaError._FATAL:
            if self.fatal is None or (error.fatal() and not self.fatal.fatal()):
                self.fatal = error  # error_cb's copy names the underlying error; a message's only says _FATAL
            return
        if error.code() == KafkaError._ALL_BROKERS_DOWN and self.outage_since is None:
            self.outage_since = self._monotonic()
        self.report(client, error)

    def report(self, what: str, error: KafkaError | BaseException) -> None:
        """One line per kind of error and 10 s, with a count of those left out."""
        code = error.code() if isinstance(error, KafkaError) else None
        text = error_text(error)
        if code == KafkaError.UNKNOWN_TOPIC_OR_PART:
            text = f"{text} (waiting for topic {self._topic} to exist)"
        suppressed = self._throttle.allow(f"{what}-{code}")
        if suppressed is not None:
            log.warning(
                "Kafka %s error: %s%s",
                what,
                text,
                f" ({suppressed} similar not logged)" if suppressed else "",
                extra={"code": code if code is None else KafkaError(code).name()},
            )

    def recovered(self) -> None:
        """Something came back from the cluster: an outage, if any, is over."""
        if self.outage_since is not None:
            log.info("Kafka reachable again after %.0fs", self._monotonic() - self.outage_since)
            self.outage_since = None
