"""The one place that talks to confluent-kafka: asynchronous produce, error reports, bounded flush.

Delivery reports are requested for failures only (`delivery.report.only.error`):
a report per success would cost a Python call and a Message object per
reading (measured: about 0.8 µs of CPU each, a third of the whole loop).
Nothing is lost by it: a reading leaves librdkafka's queue either acknowledged
by the in-sync replicas (acks=all) or through a failure report, so the readings
delivered are exactly those produced, minus those reported failed, minus those
still queued (`pending`). The few readings whose acknowledgement matters one by
one (HIGH TEMP lines) are followed through librdkafka's per-partition
acknowledgement counter instead (publisher.acks).
"""

from __future__ import annotations

import collections
import logging
import math
from collections.abc import Callable, Sequence
from typing import Any, Final

import msgspec
import numpy as np
import numpy.typing as npt
from confluent_kafka import KafkaError, Message, Producer

from publisher.acks import AckTracker
from publisher.broker_watch import STATS_INTERVAL_MS, BrokerWatch
from publisher.high_temp import HotReading, plural
from publisher.settings import HIGH_TEMPERATURE, SERVICE, PublisherSettings
from shared.codec import CONTENT_TYPE_HEADER
from shared.kafka import producer_config
from shared.librdkafka_log import librdkafka_logger
from shared.logs import Throttle

log = logging.getLogger(__name__)

# librdkafka error names a failed delivery usually carries; their counters exist (at zero) from the start.
USUAL_FAILURES: Final = ("_MSG_TIMED_OUT", "MSG_SIZE_TOO_LARGE", "TOPIC_AUTHORIZATION_FAILED", "_PURGE_QUEUE")
NOTHING: Final = np.zeros(0, dtype=np.intp)
LOG_EVERY: Final = 10.0  # seconds between log lines about the same kind of trouble
_BUFFER_WAIT: Final = 0.05  # seconds to serve the producer before retrying a full queue
_SHARED_QUEUE_KBYTES: Final = 512 * 1024
_KBYTES_PER_READING: Final = 0.5  # generous: a reading is about 200 bytes


def kafka_config(settings: PublisherSettings) -> dict[str, Any]:
    """Producer settings for these publisher settings (shared with the benchmark's bare produce loop).

    message.timeout.ms defaults to 0, no limit: while the cluster is away the
    readings wait in the buffer (bounded by MAX_BUFFERED_READINGS, after which
    the ticker pauses) and are delivered when it returns, however long that
    takes; a finite timeout would turn a long outage into lost readings. The
    flush at shutdown is what bounds the wait for the last ones.
    """
    queue_messages = settings.max_buffered_readings + settings.num_devices
    return producer_config(
        settings.common.brokers,
        SERVICE,
        **{
            "delivery.report.only.error": True,
            "message.timeout.ms": round(settings.delivery_timeout * 1000),
            # The service keeps at most MAX_BUFFERED_READINGS waiting; one more tick must always fit.
            "queue.buffering.max.messages": queue_messages,
            "queue.buffering.max.kbytes": max(_SHARED_QUEUE_KBYTES, math.ceil(queue_messages * _KBYTES_PER_READING)),
        },
    )


class _Temperature(msgspec.Struct):
    temperature: float


_temperature_of = msgspec.json.Decoder(_Temperature).decode


def _hot(value: bytes | None) -> bool:
    """Whether a failed record was a watched (HIGH TEMP) reading: only failures pay for this decode."""
    try:
        return value is not None and _temperature_of(value).temperature > HIGH_TEMPERATURE
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):
        return False


def _not_logged(suppressed: int) -> str:
    return f" ({suppressed} more like it not logged in the last {LOG_EVERY:g}s)" if suppressed else ""


LIBRDKAFKA_LOG = librdkafka_logger("publisher.librdkafka")


class KafkaSink:
    """Produces readings to one topic; counts and logs every failed delivery by reason.

    `partitions` is the topic's partition count, to follow watched readings to
    their acknowledgement (see publisher.acks).
    """

    def __init__(self, config: dict[str, Any], topic: str, partitions: int) -> None:
        self._topic = topic
        self._acks: AckTracker[HotReading] = AckTracker(partitions)
        self._headers: list[tuple[str, str | bytes | None]] = [CONTENT_TYPE_HEADER]
        self._throttle = Throttle(LOG_EVERY)
        self._failures: collections.Counter[str] = collections.Counter()
        self._fatal: str | None = None
        self._brokers = BrokerWatch()
        self._producer = Producer({
            **config,
            "on_delivery": self._on_delivery,
            "error_cb": self._on_error,
            "statistics.interval.ms": STATS_INTERVAL_MS,
            "stats_cb": self._on_statistics,
            # librdkafka's own lines go through logging (served by poll), so LOG_FORMAT=json covers them too.
            "logger": LIBRDKAFKA_LOG,
        })

    def send(
        self,
        keys: Sequence[bytes],
        values: Sequence[bytes],
        give_up: Callable[[], bool],
        watched: npt.NDArray[np.intp] = NOTHING,
        named: Sequence[HotReading] = (),
    ) -> int:
        """Queue one record per key, in order; returns how many were queued (all, unless `give_up` said so).

        A full queue is served (poll) and the same record retried, so order
        holds and nothing is dropped; only a stop request while the queue
        stays full leaves the rest of the batch unsent (and never produced).
        The records `watched` indexes are counted by take_acknowledged() once
        the cluster acknowledged them; `named` readings (the first watched
        ones) come back by name.
        """
        sent = self._send(keys, values, give_up)
        self._acks.queued(keys, values, sent, watched, named)
        return sent

    def _send(self, keys: Sequence[bytes], values: Sequence[bytes], give_up: Callable[[], bool]) -> int:
        produce = self._producer.produce
        topic, headers = self._topic, self._headers
        pairs = iter(zip(keys, values, strict=True))
        while True:
            try:
                for key, value in pairs:
                    # Positional arguments: keyword parsing costs a third of a produce call.
                    # (topic, value, key, partition, callback, on_delivery, timestamp, headers)
                    produce(topic, value, key, -1, None, None, 0, headers)
            except BufferError:
                if not self._produce_when_room(key, value, give_up):
                    return len(keys) - 1 - sum(1 for _ in pairs)
                continue
            return len(keys)

    def _produce_when_room(self, key: bytes, value: bytes, give_up: Callable[[], bool]) -> bool:
        suppressed = self._throttle.allow("queue-full")
        if suppressed is not None:
            log.warning(
                "producer queue full (%s waiting); waiting for deliveries%s",
                plural(len(self._producer), "reading"), _not_logged(suppressed),
                extra={"pending": len(self._producer), "suppressed": suppressed},
            )
        while not give_up():
            self._producer.poll(_BUFFER_WAIT)
            try:
                self._producer.produce(self._topic, value, key, headers=self._headers)
            except BufferError:
                continue
            return True
        return False

    def pending(self) -> int:
        """Readings produced but neither acknowledged nor reported failed yet."""
        return len(self._producer)

    def poll(self, timeout: float) -> None:
        """Serve delivery reports and client events (callbacks run here) for up to `timeout` seconds."""
        self._producer.poll(timeout)

    def flush(self, timeout: float) -> int:
        """Wait up to `timeout` seconds for every queued reading; returns how many are still pending.

        flush() also counts queued events (a statistics report may arrive at
        the last moment); one more poll serves those, so only readings remain.
        """
        self._producer.flush(timeout)
        self._producer.poll(0)
        return len(self._producer)

    def take_acknowledged(self) -> tuple[int, list[HotReading]]:
        """Watched readings acknowledged since the last call, and those among them that were named."""
        if not len(self._producer):
            self._acks.drained()
        return self._acks.take_acknowledged()

    def take_failures(self) -> dict[str, int]:
        """Failed deliveries by reason since the last call."""
        failures = dict(self._failures)
        self._failures.clear()
        return failures

    def fatal_error(self) -> str | None:
        """Set once the producer cannot go on (librdkafka fatal error); the service must stop."""
        return self._fatal

    def _on_delivery(self, error: KafkaError | None, message: Message) -> None:
        if error is None:
            return
        reason = error.name()
        self._failures[reason] += 1
        value = message.value()
        self._acks.failed(value, _hot(value))
        suppressed = self._throttle.allow(f"delivery:{reason}")
        if suppressed is not None:
            key = message.key()
            device = key.decode(errors="replace") if isinstance(key, bytes) else None
            log.error(
                "delivery failed: %s (device %s, topic %s)%s",
                error.str(), device, message.topic(), _not_logged(suppressed),
                extra={"device": device, "reason": reason, "topic": message.topic(), "suppressed": suppressed},
            )

    def _on_statistics(self, stats_json: str) -> None:
        self._brokers.update(stats_json)
        try:
            stats = msgspec.json.decode(stats_json)
        except msgspec.DecodeError:
            return
        self._acks.statistics(stats, self._topic)

    def _on_error(self, error: KafkaError) -> None:
        if error.fatal():
            self._fatal = error.str()
            log.error("Kafka producer failed for good: %s", error.str(), extra={"reason": error.name()})
            return
        suppressed = self._throttle.allow(f"client:{error.code()}")
        if suppressed is not None:
            # librdkafka names the broker in the text, e.g. "127.0.0.1:9092/1: Connect ... failed".
            log.warning(
                "Kafka client: %s%s", error.str(), _not_logged(suppressed),
                extra={"reason": error.name(), "suppressed": suppressed},
            )
