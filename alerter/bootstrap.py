"""Wires the alerter's real edges (Kafka clients, the webhook) in one place, for the entry point and the benchmark.

Nothing connects here until called: `prepare_topics` talks to the admin API,
`build` only constructs clients, which connect lazily.
"""

from __future__ import annotations

import logging
import queue
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer
from confluent_kafka.admin import AdminClient

from alerter.adapters.alerts_log import AlertsLog
from alerter.adapters.dead_letters import DeadLetters
from alerter.adapters.readings import ReadingsSource
from alerter.adapters.rekeyed import Rekeyer
from alerter.adapters.slack_receiver import SlackReceiver
from alerter.alertmanager import build_receiver
from alerter.domain.budget import AlertBudget
from alerter.domain.notification import Result
from alerter.metrics import AlerterMetrics
from alerter.notifier import Fanout
from alerter.receiver import Retry
from alerter.service import AlerterService, alert_policy
from alerter.settings import AlerterSettings
from alerter.slack import WebhookClient
from alerter.watch import ClusterWatch
from shared.kafka import broker_count, consumer_config, ensure_topic, partition_count, producer_config
from shared.librdkafka_log import librdkafka_logger

log = logging.getLogger(__name__)

CLIENT_ID = "gpu-temp-alert"
SLACK_BACKOFF_INITIAL: Final = 0.25  # seconds before the first retry of a post (SLACK_BACKOFF_MAX caps the growth)


@dataclass(frozen=True)
class TopicLayout:
    source_partitions: int  # 0: the readings topic does not exist yet
    alert_partitions: int


def prepare_topics(settings: AlerterSettings, admin: AdminClient, timeout: float = 30.0) -> TopicLayout:
    """Create the alerts and dead-letter topics when missing, with as many partitions as the readings topic.

    Equal partition counts let each instance restore cooldowns from one alerts
    partition (see adapters/alerts_log.py). Replication: TOPIC_REPLICATION_FACTOR,
    else the cluster's default.
    """
    metadata = admin.list_topics(timeout=timeout)
    source = metadata.topics.get(settings.source_topic)
    source_partitions = len(source.partitions) if source is not None and source.error is None else 0
    if not source_partitions:
        log.warning("topic %s does not exist yet; the alerter will wait for it", settings.source_topic)
    partitions = source_partitions or 1
    rf = settings.common.topic_replication_factor
    for topic in (settings.alert_topic, settings.dlq_topic):
        ensure_topic(
            admin,
            topic,
            partitions=partitions,
            replication_factor=rf,
            timeout=timeout,
            expected_brokers=broker_count(settings.common.brokers),
        )
    alert_partitions = partition_count(admin, settings.alert_topic, timeout)
    if alert_partitions is None:
        missing = f"no broker reports topic {settings.alert_topic}"
        raise KafkaException(KafkaError(KafkaError.UNKNOWN_TOPIC_OR_PART, missing))
    return TopicLayout(source_partitions, alert_partitions)


def kafka_logger() -> logging.Logger:
    """The logger every Kafka client of the alerter hands librdkafka's own lines to."""
    return librdkafka_logger("alerter.librdkafka")


def build(
    settings: AlerterSettings,
    metrics: AlerterMetrics,
    layout: TopicLayout,
    *,
    client_id: str = CLIENT_ID,
    consumer_overrides: Mapping[str, Any] | None = None,
    producer_overrides: Mapping[str, Any] | None = None,
) -> tuple[AlerterService, WebhookClient | None]:
    """The service wired to real Kafka clients and to every configured receiver (Slack, with the alert budget, and
    Alertmanager, each on its own notifier thread); the Slack client is returned for the start-up and shutdown
    notices (None without Slack). The overrides (tests) join the clients' configs."""
    brokers = settings.common.brokers
    logger = kafka_logger()
    watch = ClusterWatch(settings.source_topic)
    producer = Producer(
        producer_config(
            brokers,
            f"{client_id}-producer",
            logger=logger,
            error_cb=lambda error: watch.error(error, "producer"),
            # Alerts and dead letters are few: send each at once rather than wait for a batch to fill.
            **{"linger.ms": 0, **(producer_overrides or {})},
        )
    )
    alerts_log = AlertsLog(
        producer,
        lambda: Consumer(
            consumer_config(
                brokers, f"{client_id}-restore", f"{settings.consumer_group}.restore", "earliest", logger=logger
            )
        ),
        settings.alert_topic,
        settings.source_topic,
        layout.alert_partitions,
    )
    results: queue.SimpleQueue[Result] = queue.SimpleQueue()
    notifier = Fanout(results, metrics)
    client = None
    if settings.webhook_url is not None:
        client = WebhookClient(settings.webhook_url, timeout=settings.slack_timeout)
        notifier.add(
            SlackReceiver(client, settings.slack_channel),
            Retry(initial=SLACK_BACKOFF_INITIAL, maximum=settings.slack_backoff_max),
            AlertBudget(settings.alert_budget_per_minute),
        )
    alertmanager = build_receiver(settings.alertmanager, metrics.registry)
    if alertmanager is not None:
        notifier.add(alertmanager, alertmanager.retry)
    config = consumer_config(
        brokers,
        client_id,
        settings.consumer_group,
        settings.offset_reset,
        logger=logger,
        **{
            "session.timeout.ms": round(settings.session_timeout * 1000),
            "heartbeat.interval.ms": min(3000, round(settings.session_timeout * 1000 / 3)),
            # A topic created after we subscribed (publisher started later) is noticed within seconds, not minutes.
            "topic.metadata.refresh.interval.ms": 10_000,
            **(consumer_overrides or {}),
        },
    )
    service = AlerterService(
        settings=settings,
        source=ReadingsSource(config, settings.source_topic, alert_policy(settings).watch_above),
        alerts_log=alerts_log,
        dead_letters=DeadLetters(producer, settings.dlq_topic),
        rekeyer=Rekeyer(producer, settings.source_topic),
        producer=producer,
        notifier=notifier,
        results=results,
        watch=watch,
        metrics=metrics,
    )
    return service, client
