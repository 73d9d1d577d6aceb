"""`gpu-temp-alert` / `python -m alerter`: settings, logging, health, cluster wait, topics, then the loop.

Exit codes: 0 after a clean shutdown (SIGINT/SIGTERM); 1 when the cluster
stays unreachable, a topic cannot be created, a Kafka client error ends the
loop or the notifier thread dies (one line each; what was committed stays,
the rest is read again after a restart); 2 for a bad setting or option.

Shutdown fits compose's 45 s stop_grace_period with the defaults: undelivered
alerts get SHUTDOWN_TIMEOUT (10 s), the alert being posted up to SLACK_TIMEOUT
(10 s) more, then offsets are committed and the group left; the shutdown
notice comes last, ONE attempt within what is left of SHUTDOWN_BUDGET.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Sequence
from typing import Final

from confluent_kafka import KafkaException

from alerter.bootstrap import CLIENT_ID, SLACK_BACKOFF_INITIAL, build, kafka_logger, prepare_topics
from alerter.metrics import AlerterMetrics
from alerter.receiver import Outcome, Retry, deliver
from alerter.service import AlerterService, NotifierStopped
from alerter.settings import AlerterSettings, load_settings, parse_args
from alerter.slack import SHUTDOWN_TEXT, STARTUP_TEXT, WebhookClient, encode_message, notice_message
from shared.config import ConfigError, Env, exit_on_config_error, load_environment
from shared.health import HealthServer
from shared.kafka import admin_client, await_cluster, error_text
from shared.logs import configure_logging
from shared.signals import stop_on_signals

log = logging.getLogger("alerter")

NOTICE_ATTEMPTS: Final = 3  # the start-up notice
NOTICE_TIMEOUT: Final = 5.0  # seconds one notice post may take
SHUTDOWN_BUDGET: Final = 35.0  # seconds from the start of shutdown to the end of the shutdown notice
MIN_NOTICE_TIME: Final = 0.5  # less left than this: the shutdown notice is not attempted


def main(argv: Sequence[str] | None = None) -> int:
    try:
        parse_args(sys.argv[1:] if argv is None else argv)
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
            settings.common.metrics_port,
            lambda: bool(service) and service[0].ready(),
            metrics.registry,
            host=settings.common.metrics_host,
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
        log.error("cannot prepare topics %s and %s: %s", settings.alert_topic, settings.dlq_topic, error_text(exc))  # noqa: TRY400 - one clear line
        return 1
    log.info("connected to the Kafka cluster at %s", settings.common.brokers)
    service, client = build(settings, metrics, layout)
    holder.append(service)
    try:
        if client is not None:
            _notify(client, STARTUP_TEXT, settings, stop)
        return serve(service, client, settings.slack_channel, stop)
    finally:
        if client is not None:
            client.close()


def serve(service: AlerterService, client: WebhookClient | None, channel: str, stop: threading.Event) -> int:
    """Run the loop until `stop`, then say goodbye on Slack (when it is a receiver); 1 (after one line) when a Kafka
    error or a dead notifier ends it."""
    code = 0
    try:
        service.run(stop)
    except KafkaException as exc:
        log.error(  # noqa: TRY400 - one clear line; offsets committed before stay, the rest is read again
            "stopping on a Kafka error: %s; the records not yet committed will be read again after a restart",
            error_text(exc, detail=True),
        )
        code = 1
    except NotifierStopped as exc:
        log.error("%s", exc)  # noqa: TRY400 - one clear line
        code = 1
    began = service.shutdown_started if service.shutdown_started is not None else time.monotonic()
    if client is not None:
        _say_goodbye(client, channel, SHUTDOWN_BUDGET - (time.monotonic() - began))
    if code == 0:
        log.info("Application shutdown complete")
    return code


def _notify(client: WebhookClient, text: str, settings: AlerterSettings, stop: threading.Event) -> None:
    """The start-up notice: a few short tries, and a warning if Slack does not take it."""
    payload = encode_message(notice_message(text, settings.slack_channel))
    attempt = deliver(
        lambda: client.post(payload, timeout=NOTICE_TIMEOUT),
        Retry(initial=SLACK_BACKOFF_INITIAL, maximum=settings.slack_backoff_max),
        name="Slack",
        wait=lambda delay: not stop.wait(min(delay, 2.0)),
        attempts=NOTICE_ATTEMPTS,
    )
    if attempt.outcome is not Outcome.ACCEPTED:
        log.warning("could not send the notification %r to Slack: %s", text, attempt.describe())


def _say_goodbye(client: WebhookClient, channel: str, left: float) -> None:
    """The shutdown notice: one attempt within what is left of the budget (offsets are committed already)."""
    if left < MIN_NOTICE_TIME:
        log.warning("no time left to send the notification %r to Slack", SHUTDOWN_TEXT)
        return
    attempt = client.post(encode_message(notice_message(SHUTDOWN_TEXT, channel)), timeout=min(NOTICE_TIMEOUT, left))
    if attempt.outcome is not Outcome.ACCEPTED:
        log.warning("could not send the notification %r to Slack: %s", SHUTDOWN_TEXT, attempt.describe())


if __name__ == "__main__":
    sys.exit(main())
