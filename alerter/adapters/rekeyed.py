"""Readings keyed by something other than their device_id, produced again to the readings topic keyed by it.

The policy keeps a device's cooldown in the state of the partition that
device's records land on, which is chosen by the record key (murmur2, as
every producer of the project and Kafka's Java client choose it). A reading
keyed otherwise (another device's id, a host name, no key at all) lands
elsewhere, so one device judged on two partitions could alert twice within
one cooldown. Such a hot reading is not judged where it landed: its record is
produced again, byte for byte (value, headers, timestamp), keyed by its
device_id, so it is judged on the device's own partition; the original's
offset is committed once the broker acknowledged the copy. Dead-lettering it
instead would lose the alert, and "never lose an alert" decides.

Used only by the service's thread, which owns the producer.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Final

from confluent_kafka import TIMESTAMP_CREATE_TIME, KafkaError, Message, Producer

from shared.kafka import Headers, error_text, produce_until_acknowledged
from shared.logs import Throttle

log = logging.getLogger(__name__)

REKEYED_FROM: Final = "rekeyed-from"  # "<partition>/<offset>" of the record this one copies
REKEYED_KEY: Final = "rekeyed-key"  # the key it had (absent when it had none)


class Rekeyer:
    def __init__(self, producer: Producer, topic: str) -> None:
        self._producer = producer
        self.topic = topic
        self._throttle = Throttle(30.0)

    def rekey(self, message: Message, device_id: str, on_done: Callable[[KafkaError | None], None]) -> None:
        """Produce `message` again keyed by `device_id`; `on_done(None)` once acknowledged. Raises KafkaException
        when librdkafka refuses it outright."""
        original = message.headers() or []
        headers: Headers = list(original.items() if isinstance(original, dict) else original)
        headers.append((REKEYED_FROM, f"{message.partition()}/{message.offset()}".encode()))
        key = message.key()
        if key is not None:
            headers.append((REKEYED_KEY, key))
        kind, millis = message.timestamp()
        produce_until_acknowledged(
            self._producer,
            self.topic,
            message.value(),
            device_id.encode(),
            headers=headers,
            on_done=on_done,
            timestamp=millis if kind == TIMESTAMP_CREATE_TIME and millis > 0 else 0,  # a log-append time is not ours
            on_failure=self._failed,
        )

    def _failed(self, error: KafkaError) -> None:
        if self._throttle.allow(f"rekey-{error.code()}") is not None:
            log.error(
                "a re-keyed reading could not be produced to %s (%s); producing it again", self.topic, error_text(error)
            )
