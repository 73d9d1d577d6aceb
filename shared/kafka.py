"""Kafka client construction and the admin steps both services need.

Nothing here connects on import; builders return clients that connect lazily,
and the admin helpers are bounded in time so start-up can never hang silently.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final

from confluent_kafka import KafkaError, KafkaException, Message, Producer
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic, TopicMetadata

from shared.backoff import backoff

if TYPE_CHECKING:
    from shared.config import CommonSettings

log = logging.getLogger(__name__)

# murmur2 like Kafka's Java client and franz-go, so a device lands on the same
# partition whichever client produced it (librdkafka's default is crc32).
PARTITIONER = "murmur2_random"
QUEUE_FULL_WAIT: Final = 0.05  # seconds a producer with a full local queue is served before the next try
# A starting cluster answers before every broker has registered; topic creation waits this long for the
# brokers the services were given.
REGISTRATION_WAIT: Final = 60.0
REGISTRATION_RETRY: Final = 1.0  # seconds between two creation attempts meanwhile

Headers = list[tuple[str, str | bytes | None]]
OnDelivery = Callable[[KafkaError | None, Message], None]


def kafka_error(error: BaseException | KafkaError) -> KafkaError | None:
    """The KafkaError itself, or the one a KafkaException carries; None for anything else."""
    if isinstance(error, KafkaException) and error.args and isinstance(error.args[0], KafkaError):
        return error.args[0]
    return error if isinstance(error, KafkaError) else None


def error_text(error: BaseException | KafkaError, *, detail: bool = False) -> str:
    """One line for a Kafka error, never a traceback: librdkafka's own text for a KafkaError (also one carried by
    a KafkaException), else the exception's type and message. `detail` adds the error's name and "fatal"."""
    found = kafka_error(error)
    if found is None:
        return f"{type(error).__name__}: {error}"
    if not detail:
        return str(found.str())
    return f"{found.str()} ({found.name()}{', fatal' if found.fatal() else ''})"


def produce(
    producer: Producer,
    topic: str,
    value: bytes | None,
    key: bytes | None = None,
    *,
    partition: int = -1,
    timestamp: int = 0,
    headers: Headers | None = None,
    on_delivery: OnDelivery | None = None,
) -> None:
    """Produce one record, waiting for room while librdkafka's local queue is full.

    A full queue (BufferError) is served with `poll` (delivery reports free
    room; their callbacks run here, on the caller's thread, which must be the
    thread that owns the producer) and the same record is tried again, so
    nothing is dropped or reordered. Any other error (KafkaException: too
    large, unknown partition...) is the caller's to handle.
    """
    while True:
        try:
            producer.produce(
                topic, value, key, partition=partition, timestamp=timestamp, headers=headers, on_delivery=on_delivery
            )
        except BufferError:
            producer.poll(QUEUE_FULL_WAIT)
        else:
            return


def produce_until_acknowledged(
    producer: Producer,
    topic: str,
    value: bytes | None,
    key: bytes | None,
    *,
    headers: Headers,
    on_done: Callable[[KafkaError | None], None],
    timestamp: int = 0,
    on_failure: Callable[[KafkaError], None] = lambda _error: None,
    adjust: Callable[[KafkaError, bytes | None, Headers], tuple[bytes | None, Headers]] | None = None,
) -> None:
    """Produce a copy the caller must not lose: a failed delivery is produced again (after `adjust` may change the
    value and headers, e.g. shorten a record too large), never dropped. `on_done(None)` runs once the broker
    acknowledged it; `on_done(error)` only when producing it again is refused outright (then the caller keeps
    whatever the copy stood for). `on_failure` hears of each failed delivery. A KafkaException from the first
    produce is the caller's. Delivery reports run inside the producer's poll, on the thread that owns it.
    """

    def delivered(error: KafkaError | None, _message: Message) -> None:
        if error is None:
            on_done(None)
            return
        on_failure(error)
        again_value, again_headers = (value, headers) if adjust is None else adjust(error, value, headers)
        try:
            produce_until_acknowledged(
                producer,
                topic,
                again_value,
                key,
                headers=again_headers,
                on_done=on_done,
                timestamp=timestamp,
                on_failure=on_failure,
                adjust=adjust,
            )
        except KafkaException as exc:  # raised here it would surface in the middle of a poll
            log.error(  # noqa: TRY400 - one clear line
                "a copy to %s cannot be produced again (%s); what it stands for stays uncommitted",
                topic,
                error_text(exc),
            )
            on_done(error)

    produce(producer, topic, value, key, timestamp=timestamp, headers=headers, on_delivery=delivered)


def common_config(brokers: str, client_id: str) -> dict[str, Any]:
    return {
        "bootstrap.servers": brokers,
        "client.id": client_id,
        # Redpanda and Kafka both advertise 127.0.0.1 locally; IPv4 avoids a
        # futile ::1 attempt on every reconnect.
        "broker.address.family": "v4",
        "reconnect.backoff.ms": 100,
        "reconnect.backoff.max.ms": 5_000,
        "socket.keepalive.enable": True,
        "log.connection.close": False,
    }


def producer_config(brokers: str, client_id: str, **overrides: Any) -> dict[str, Any]:
    """Durable, ordered, deduplicated: acks=all with the idempotent producer."""
    config = {
        **common_config(brokers, client_id),
        "acks": "all",
        "enable.idempotence": True,
        "partitioner": PARTITIONER,
        "linger.ms": 5,
        "batch.size": 1_000_000,
        "compression.type": "lz4",
        "message.timeout.ms": 120_000,
        "queue.buffering.max.messages": 1_000_000,
        "queue.buffering.max.kbytes": 512 * 1024,
    }
    config.update(overrides)
    return config


def consumer_config(brokers: str, client_id: str, group_id: str, offset_reset: str, **overrides: Any) -> dict[str, Any]:
    """Manual commits of stored offsets: an offset is stored only once its record is fully handled.

    Fetching: librdkafka prefetches each partition into a local queue until it
    holds `queued.min.messages`, then (by default) leaves that partition alone
    for `fetch.queue.backoff.ms` = 1 s. A consumer that drains faster than
    that, as ours do with a backlog, waits on an empty queue most of that
    second: with the defaults a bare consume loop read 190-230k records/s here,
    with a 10 ms back-off 1.5 million. 20,000 records (about 4 MiB of readings)
    per partition still bridge the fetch round trip, and bound the memory a
    backlog takes.
    """
    config = {
        **common_config(brokers, client_id),
        "group.id": group_id,
        "auto.offset.reset": offset_reset,
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "session.timeout.ms": 30_000,
        "partition.assignment.strategy": "cooperative-sticky",
        "fetch.queue.backoff.ms": 10,
        "queued.min.messages": 20_000,
    }
    config.update(overrides)
    return config


def broker_count(brokers: str) -> int:
    """How many addresses a bootstrap list names: the brokers a starting cluster is expected to register."""
    return len([address for address in brokers.split(",") if address.strip()])


def admin_client(brokers: str, client_id: str, **overrides: Any) -> AdminClient:
    """`overrides` as for the other builders (e.g. `logger`, to route librdkafka's own lines into logging)."""
    return AdminClient({**common_config(brokers, client_id), **overrides})


def wait_for_cluster(
    admin: AdminClient,
    *,
    attempts: int,
    initial_backoff: float = 0.5,
    max_backoff: float = 10.0,
    sleep: Callable[[float], None] = time.sleep,
    describe: str = "Kafka cluster",
) -> int:
    """Block until the cluster answers metadata; return how many brokers it has.

    Retries with exponential backoff and jitter (shared.backoff), one log line
    per attempt, and raises ConnectionError with a clear message after
    `attempts` failures.
    """
    for attempt in range(1, attempts + 1):
        try:
            metadata = admin.list_topics(timeout=5)
        except KafkaException as exc:
            reason = error_text(exc)
        else:
            return len(metadata.brokers)
        if attempt == attempts:
            break
        delay = backoff(attempt, initial=initial_backoff, maximum=max_backoff)
        log.warning(
            "%s not reachable (attempt %d/%d: %s); retrying in %.1fs",
            describe, attempt, attempts, reason, delay,
            extra={"attempt": attempt, "attempts": attempts},
        )
        sleep(delay)
    raise ConnectionError(f"{describe} not reachable after {attempts} attempts")


class _StopRequested(Exception):
    """A stop signal arrived while waiting for the cluster."""


def await_cluster(admin: AdminClient, common: CommonSettings, stop: threading.Event) -> bool:
    """Start-up wait of both services: True once the cluster answers, False if `stop` was set meanwhile.

    Raises ConnectionError, with a message naming STARTUP_ATTEMPTS, past the bound.
    """

    def sleep(seconds: float) -> None:
        if stop.wait(seconds):
            raise _StopRequested

    try:
        wait_for_cluster(
            admin,
            attempts=common.startup_attempts,
            max_backoff=common.startup_backoff_max,
            sleep=sleep,
            describe=f"Kafka cluster at {common.brokers}",
        )
    except _StopRequested:
        return False
    except ConnectionError as exc:
        raise ConnectionError(f"{exc} (STARTUP_ATTEMPTS={common.startup_attempts}); giving up") from None
    return not stop.is_set()


def cluster_default_replication(admin: AdminClient, timeout: float = 10.0) -> int | None:
    """The brokers' default.replication.factor, or None if it cannot be read (let the broker decide)."""
    metadata = admin.list_topics(timeout=timeout)
    if not metadata.brokers:
        return None
    broker_id = str(next(iter(metadata.brokers)))
    resource = ConfigResource(ConfigResource.Type.BROKER, broker_id)
    try:
        configs = admin.describe_configs([resource])[resource].result(timeout=timeout)
    except KafkaException:
        return None
    entry = configs.get("default.replication.factor")
    try:
        return int(entry.value) if entry is not None else None
    except (TypeError, ValueError):
        return None


def ensure_topic(
    admin: AdminClient,
    name: str,
    *,
    partitions: int,
    replication_factor: int | None = None,
    config: dict[str, str] | None = None,
    timeout: float = 30.0,
    expected_brokers: int = 0,
    registration_wait: float = REGISTRATION_WAIT,
    sleep: Callable[[float], None] = time.sleep,
) -> bool:
    """Create the topic if missing (True when created); an existing topic is left as it is.

    replication_factor None means the cluster's own default (-1 on the wire).
    A cluster that has just started answers before all its brokers have
    registered: while it lists fewer than `expected_brokers` (the addresses
    the services were given), a refusal for too few brokers is retried for up
    to `registration_wait` seconds; otherwise it is final at once.
    """
    metadata = admin.list_topics(timeout=timeout)
    if name in metadata.topics and metadata.topics[name].error is None:
        return False
    topic = NewTopic(
        name,
        num_partitions=partitions,
        replication_factor=-1 if replication_factor is None else replication_factor,
        config=config or {},
    )
    deadline, waiting, registered = time.monotonic() + registration_wait, False, len(metadata.brokers)
    while True:
        future = admin.create_topics([topic], operation_timeout=timeout, request_timeout=timeout)[name]
        try:
            future.result(timeout=timeout)
            break
        except KafkaException as exc:
            error = kafka_error(exc)
            code = error.code() if error is not None else None
            if code == KafkaError.TOPIC_ALREADY_EXISTS:
                return False
            if (
                code != KafkaError.INVALID_REPLICATION_FACTOR
                or registered >= expected_brokers
                or time.monotonic() >= deadline
            ):
                raise
            if not waiting:  # one line, however long the wait
                log.info(
                    "topic %s: %s; waiting up to %gs for more brokers to register",
                    name, error_text(exc), registration_wait, extra={"topic": name},
                )
                waiting = True
            sleep(REGISTRATION_RETRY)
            registered = len(admin.list_topics(timeout=timeout).brokers)
    _wait_for_topic(admin, name, partitions, timeout)
    log.info("created topic %s", name, extra={"topic": name, "partitions": partitions})
    return True


def _wait_for_topic(admin: AdminClient, name: str, partitions: int, timeout: float) -> None:
    """New topics take a moment to reach every broker's metadata; wait for their leaders."""
    _poll_topic(
        admin,
        name,
        timeout,
        lambda t: len(t.partitions) == partitions and all(p.leader >= 0 for p in t.partitions.values()),
    )


def partition_count(admin: AdminClient, name: str, timeout: float = 30.0) -> int | None:
    """How many partitions topic `name` has; None if no broker reports it within `timeout` seconds.

    Each metadata request may reach another broker, and a broker learns of a
    topic created through another one a moment later: one answer without the
    topic is not the cluster's last word.
    """
    topic = _poll_topic(admin, name, timeout, lambda t: bool(t.partitions))
    return None if topic is None else len(topic.partitions)


def _poll_topic(
    admin: AdminClient, name: str, timeout: float, ready: Callable[[TopicMetadata], bool]
) -> TopicMetadata | None:
    """The topic's metadata once an answer has it without error and `ready`; None after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        topic = admin.list_topics(topic=name, timeout=timeout).topics.get(name)
        if topic is not None and topic.error is None and ready(topic):
            return topic
        if time.monotonic() >= deadline:
            return None
        time.sleep(0.1)
