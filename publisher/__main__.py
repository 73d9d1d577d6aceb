"""`gpu-temp-publisher` / `python -m publisher`: wiring only.

Exit codes: 0 when every reading produced was delivered, 1 when some were
not (or the cluster never answered, or the producer failed for good),
2 for a configuration error.
"""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Sequence

import numpy as np
from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient
from prometheus_client import CollectorRegistry

from publisher.kafka_sink import LIBRDKAFKA_LOG, KafkaSink, kafka_config
from publisher.metrics import PublisherMetrics
from publisher.service import PublisherService, Timing
from publisher.settings import SERVICE, PublisherSettings, load_settings
from publisher.simulator import build_fleet, initial_state
from shared.config import ConfigError, Env, exit_on_config_error, load_environment
from shared.health import HealthServer
from shared.kafka import admin_client, await_cluster, ensure_topic
from shared.logs import configure_logging
from shared.signals import stop_on_signals

log = logging.getLogger("publisher")


class _Stopped(Exception):
    """A stop signal arrived while starting up."""


def main(argv: Sequence[str] | None = None) -> int:
    try:
        settings = load_settings(Env(load_environment()), sys.argv[1:] if argv is None else argv)
    except ConfigError as error:
        exit_on_config_error(SERVICE, error)
    configure_logging(settings.common.log_level, settings.common.log_format)
    stop = threading.Event()
    stop_on_signals(stop)
    try:
        return _run(settings, stop)
    except ConfigError as error:
        exit_on_config_error(SERVICE, error)
    except _Stopped:
        log.info("stopped before publishing anything")
        return 0


def _run(settings: PublisherSettings, stop: threading.Event) -> int:
    seed = settings.seed if settings.seed is not None else int(np.random.SeedSequence().entropy)  # type: ignore[arg-type]
    rng = np.random.default_rng(seed)
    fleet = build_fleet(settings.num_devices, rng)
    state = initial_state(fleet, rng)
    registry = CollectorRegistry()
    metrics = PublisherMetrics(registry, fleet)
    ready = threading.Event()
    health = _start_health_server(settings.common.metrics_host, settings.common.metrics_port, ready, registry)
    try:
        if not _set_up_cluster(settings, stop):
            return 1
        sink = KafkaSink(kafka_config(settings), settings.topic)
        ready.set()
        log.info(
            "publishing %d devices every %gms to topic %s (SIMULATOR_SEED=%d)",
            settings.num_devices, settings.interval * 1000, settings.topic, seed,
            extra={"topic": settings.topic, "devices": settings.num_devices, "seed": seed},
        )
        service = PublisherService(
            fleet=fleet,
            state=state,
            abnormal_probability=settings.abnormal_probability,
            rng=rng,
            sink=sink,
            metrics=metrics,
            stop=stop,
            timing=Timing(settings.interval, settings.max_ticks, settings.flush_timeout),
            max_buffered=settings.max_buffered_readings,
        )
        summary = service.run()
        return 0 if summary.ok else 1
    finally:
        ready.clear()
        health.stop()


def _start_health_server(
    host: str, port: int, ready: threading.Event, registry: CollectorRegistry
) -> HealthServer:
    try:
        return HealthServer(port, ready.is_set, registry, host).start()
    except OSError as error:
        raise ConfigError(f"METRICS_PORT={port}: expected a free port ({error.strerror})") from None


def _set_up_cluster(settings: PublisherSettings, stop: threading.Event) -> bool:
    """Wait for the cluster (bounded retries) and create the topic if missing; False if it never answered."""
    brokers = settings.common.brokers
    admin = admin_client(brokers, f"{SERVICE}-admin", logger=LIBRDKAFKA_LOG)
    failure: str | None
    try:
        if not await_cluster(admin, settings.common, stop):
            raise _Stopped
    except ConnectionError as error:
        failure = str(error)
    else:
        failure = _ensure_topic(admin, settings)
    if failure is not None:
        log.error(failure, extra={"topic": settings.topic})  # one line; a traceback would add nothing
        return False
    return True


def _ensure_topic(admin: AdminClient, settings: PublisherSettings) -> str | None:
    """None when the topic exists or was created; otherwise why not."""
    replication = settings.common.topic_replication_factor
    try:
        ensure_topic(admin, settings.topic, partitions=settings.topic_partitions, replication_factor=replication)
    except KafkaException as exc:
        error = exc.args[0] if exc.args else None
        if isinstance(error, KafkaError) and error.code() == KafkaError.INVALID_REPLICATION_FACTOR:
            raise ConfigError(
                f"TOPIC_REPLICATION_FACTOR={replication}: expected at most the number of brokers"
                f" (the cluster said: {error.str()})"
            ) from None
        reason = error.str() if isinstance(error, KafkaError) else str(exc)
        return f"cannot set up topic {settings.topic}: {reason}"
    return None

if __name__ == "__main__":
    sys.exit(main())
