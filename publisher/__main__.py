"""`gpu-temp-publisher` / `python -m publisher`: wiring only.

Exit codes: 0 when every reading produced was delivered, 1 when some were
not (or the cluster never answered, or the producer failed for good),
2 for a configuration error or when READINGS_SOURCE=nvml finds no NVML
library or driver (one line, before any connection to Kafka).
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

from publisher.dcgm_source import DcgmSource
from publisher.high_temp import plural
from publisher.kafka_sink import LIBRDKAFKA_LOG, USUAL_FAILURES, KafkaSink, kafka_config
from publisher.metrics import PublisherMetrics
from publisher.nvml_source import NvmlSource, NvmlUnavailable, open_nvml
from publisher.service import PublisherService, Sink, Timing
from publisher.settings import SERVICE, PublisherSettings, load_settings
from publisher.simulator import build_fleet, failing_fans, initial_state
from publisher.sources import ReadingSource, SimulatorSource
from publisher.stdout_sink import StdoutSink
from shared.config import EXIT_CONFIG_ERROR, ConfigError, Env, exit_on_config_error, load_environment
from shared.health import HealthServer
from shared.kafka import admin_client, await_cluster, broker_count, ensure_topic, error_text, partition_count
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
    registry = CollectorRegistry()
    metrics = PublisherMetrics(registry, settings.device_series_limit, USUAL_FAILURES)
    source, description, note = _build_source(settings, metrics)
    ready = threading.Event()
    try:
        health = _start_health_server(settings.common.metrics_host, settings.common.metrics_port, ready, registry)
        try:
            sink: Sink
            if settings.stdout:  # a look at this host's GPUs: no cluster
                sink, where = StdoutSink(sys.stdout.buffer), "stdout"
            else:
                partitions = _set_up_cluster(settings, stop)
                if partitions is None:
                    return 1
                sink, where = KafkaSink(kafka_config(settings), settings.topic, partitions), f"topic {settings.topic}"
            ready.set()
            log.info(
                "publishing %s to %s%s", description, where, note,
                extra={"topic": settings.topic, "devices": source.devices, "source": source.name},
            )
            return _serve(settings, source, sink, metrics, stop)
        finally:
            ready.clear()
            health.stop()
    finally:
        source.close()


def _serve(
    settings: PublisherSettings, source: ReadingSource, sink: Sink, metrics: PublisherMetrics, stop: threading.Event
) -> int:
    service = PublisherService(
        source=source,
        sink=sink,
        metrics=metrics,
        stop=stop,
        timing=Timing(settings.interval, settings.max_ticks, settings.flush_timeout),
        max_buffered=settings.max_buffered_readings,
    )
    return 0 if service.run().ok else 1


def _build_source(settings: PublisherSettings, metrics: PublisherMetrics) -> tuple[ReadingSource, str, str]:
    """The configured source, what the start-up line says it reads and a note to end that line with.

    NVML trouble exits 2 here, before anything connects to Kafka.
    """
    config, every = settings.source, f"every {settings.interval * 1000:g}ms"
    if config.kind == "nvml":
        try:
            nvml = open_nvml()
        except NvmlUnavailable as error:
            print(f"{SERVICE}: cannot read GPUs (READINGS_SOURCE=nvml): {error}", file=sys.stderr)  # noqa: T201
            raise SystemExit(EXIT_CONFIG_ERROR) from None
        source = NvmlSource(nvml, config.host_name, config.nvml_devices, metrics)
        chosen = ",".join(config.nvml_devices) or "all"
        return source, f"{plural(source.devices, 'NVIDIA GPU')} {every}", f" (NVML_DEVICES={chosen})"
    if config.kind == "dcgm":
        source_dcgm = DcgmSource(config.dcgm_urls, config.scrape_timeout, metrics)
        return source_dcgm, f"the GPUs of {plural(len(config.dcgm_urls), 'dcgm-exporter endpoint')} {every}", ""
    seed = settings.seed if settings.seed is not None else int(np.random.SeedSequence().entropy)  # type: ignore[arg-type]
    rng = np.random.default_rng(seed)
    fleet = build_fleet(settings.num_devices, rng)
    fans = failing_fans(fleet, config.fans, settings.interval)
    simulator = SimulatorSource(fleet, initial_state(fleet, rng), settings.abnormal_probability, rng, fans=fans)
    return simulator, f"{plural(settings.num_devices, 'simulated device')} {every}", f" (SIMULATOR_SEED={seed})"


def _start_health_server(
    host: str, port: int, ready: threading.Event, registry: CollectorRegistry
) -> HealthServer:
    try:
        return HealthServer(port, ready.is_set, registry, host).start()
    except OSError as error:
        raise ConfigError(f"METRICS_PORT={port}: expected a free port ({error.strerror})") from None


def _set_up_cluster(settings: PublisherSettings, stop: threading.Event) -> int | None:
    """Wait for the cluster (bounded retries), create the topic if missing; its partition count, None on failure."""
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
    if failure is None:
        failure, partitions = _partition_count(admin, settings.topic)
        if partitions is not None:
            return partitions
    log.error(failure, extra={"topic": settings.topic})  # one line; a traceback would add nothing
    return None


def _partition_count(admin: AdminClient, topic: str) -> tuple[str, int | None]:
    try:
        partitions = partition_count(admin, topic)
    except KafkaException as exc:
        return f"cannot read the metadata of topic {topic}: {error_text(exc)}", None
    if partitions is None:
        return f"topic {topic} has no partitions the cluster reports", None
    return "", partitions


def _ensure_topic(admin: AdminClient, settings: PublisherSettings) -> str | None:
    """None when the topic exists or was created; otherwise why not."""
    replication = settings.common.topic_replication_factor
    try:
        ensure_topic(
            admin,
            settings.topic,
            partitions=settings.topic_partitions,
            replication_factor=replication,
            expected_brokers=broker_count(settings.common.brokers),
        )
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
