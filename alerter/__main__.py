"""`gpu-temp-alert` / `python -m alerter`: settings, logging, health, cluster wait, topics, then the loop.

Exit codes: 0 after a clean shutdown (SIGINT/SIGTERM), 1 when the cluster
stays unreachable or a topic cannot be created, 2 for a bad setting.
"""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Sequence

from confluent_kafka import KafkaException

from alerter.bootstrap import CLIENT_ID, build, kafka_logger, prepare_topics
from alerter.metrics import AlerterMetrics
from alerter.service import AlerterService
from alerter.settings import AlerterSettings, load_settings
from alerter.slack import SHUTDOWN_TEXT, STARTUP_TEXT, Outcome, WebhookClient, encode_message, notice_message
from shared.config import ConfigError, Env, exit_on_config_error, load_environment
from shared.health import HealthServer
from shared.kafka import admin_client, await_cluster
from shared.logs import configure_logging
from shared.signals import stop_on_signals

log = logging.getLogger("alerter")

NOTICE_ATTEMPTS = 3


def main(argv: Sequence[str] | None = None) -> int:
    del argv  # configured by the environment only, as the original
    try:
        settings = load_settings(Env(load_environment()))
    except ConfigError as error:
        exit_on_config_error(CLIENT_ID, error)
    configure_logging(settings.common.log_level, settings.common.log_format)
    log.info(
        "Starting GPU Temperature Alert Service: brokers %s, topic %s, threshold %.2f°C, cooldown %gs",
        settings.common.brokers,
        settings.source_topic,
        settings.threshold,
        settings.cooldown,
    )
    stop = threading.Event()
    stop_on_signals(stop)
    metrics = AlerterMetrics()
    service: list[AlerterService] = []
    try:
        health = HealthServer(
            settings.common.metrics_port, lambda: bool(service) and service[0].ready(), metrics.registry
        ).start()
    except OSError as exc:
        log.error("cannot serve metrics on port %d: %s", settings.common.metrics_port, exc.strerror)  # noqa: TRY400 - one clear line, no traceback
        return 1
    try:
        return _run(settings, metrics, stop, service)
    finally:
        health.stop()


def _run(
    settings: AlerterSettings, metrics: AlerterMetrics, stop: threading.Event, holder: list[AlerterService]
) -> int:
    admin = admin_client(settings.common.brokers, f"{CLIENT_ID}-admin", logger=kafka_logger())

    try:
        if not await_cluster(admin, settings.common, stop):
            return 0
    except ConnectionError as exc:
        log.error("%s", exc)  # noqa: TRY400 - one clear line
        return 1
    try:
        layout = prepare_topics(settings, admin)
    except KafkaException as exc:
        log.error("cannot prepare topics %s and %s: %s", settings.alert_topic, settings.dlq_topic, exc)  # noqa: TRY400 - one clear line
        return 1
    log.info("connected to the Kafka cluster at %s", settings.common.brokers)
    service, client = build(settings, metrics, layout)
    holder.append(service)
    _notify(client, STARTUP_TEXT, settings.slack_channel, stop)
    try:
        service.run(stop)
    finally:
        _notify(client, SHUTDOWN_TEXT, settings.slack_channel, threading.Event())
        client.close()
    log.info("Application shutdown complete")
    return 0


def _notify(client: WebhookClient, text: str, channel: str, stop: threading.Event) -> None:
    """Start-up and shutdown notices: a few tries, and a warning if Slack does not take them."""
    attempt = client.deliver(
        encode_message(notice_message(text, channel)),
        wait=lambda delay: not stop.wait(min(delay, 2.0)),
        attempts=NOTICE_ATTEMPTS,
    )
    if attempt.outcome is not Outcome.ACCEPTED:
        log.warning("could not send the notification %r to Slack: %s", text, attempt.describe())


if __name__ == "__main__":
    sys.exit(main())
