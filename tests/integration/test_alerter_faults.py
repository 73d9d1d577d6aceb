"""Failures outside Slack's answers: Kafka client errors while recording or parking an alert, a dead notifier, a
fatal consumer error, a hanging Slack at shutdown. Each ends in one clear line and never loses a record: what was not
done stays uncommitted.

The in-process tests wire the alerter with alerter.bootstrap.build, against the real cluster and the real stand-in;
a producer limited to 1000-byte messages makes librdkafka itself refuse the record of a large alert.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient

from alerter.__main__ import serve
from alerter.adapters.alerts_log import AlertsLog, RestoreError
from alerter.bootstrap import build, prepare_topics
from alerter.metrics import AlerterMetrics
from alerter.service import AlerterService
from alerter.settings import AlerterSettings, load_settings
from shared.config import Env
from shared.kafka import consumer_config, producer_config
from slack_stand_in import SlackStandIn
from tests.alerter_support import (
    WEBHOOK_PATH,
    AlerterProcess,
    alert_count,
    alert_env,
    alerts_by_device,
    committed,
    end_offsets,
    produce,
    reading,
)
from tests.support import wait_until

pytestmark = pytest.mark.integration

SMALL_MESSAGES = {"message.max.bytes": 1000}  # librdkafka's minimum; a long-named device's alert exceeds it
LONG = "x" * 250


def big_reading(device: str, at: float) -> Any:
    """A hot reading whose alert (as AlertEvent JSON) is over 1000 bytes."""
    return reading(device + LONG[len(device) :], 199.0, at, host_name=LONG, gpu_model=LONG)


def test_restore_consumer_that_cannot_be_created_is_a_restore_error(kafka_bootstrap: str) -> None:
    """A Kafka error creating the restore consumer is a RestoreError (the partition is then taken without
    restored cooldowns) rather than an exception escaping the rebalance callback."""
    producer = Producer(producer_config(kafka_bootstrap, "tests-restore"))
    store = AlertsLog(
        producer,
        lambda: Consumer({"bootstrap.servers": kafka_bootstrap, "group.id": "g", "no.such.property": "1"}),
        "alerts",
        "readings",
        1,
    )
    with pytest.raises(RestoreError, match=r"no\.such\.property"):
        store.restore(0, time.time() - 60, timeout=0.5)


@dataclass
class Running:
    """An AlerterService built from real parts, run through the entry point's `serve` in a thread."""

    settings: AlerterSettings
    service: AlerterService
    stop: threading.Event
    thread: threading.Thread
    code: list[int]

    def exit_code(self, timeout: float = 60) -> int:
        self.thread.join(timeout)
        assert not self.thread.is_alive(), f"serve() still running after {timeout:g}s"
        return self.code[0]


@pytest.fixture
def run_service(
    kafka_bootstrap: str, kafka_admin: AdminClient, unique: str, slack: SlackStandIn
) -> Iterator[Callable[..., Running]]:
    """Starts `serve` on a service wired by alerter.bootstrap.build; the overrides join its clients' configs."""
    started: list[Running] = []

    def start(
        consumer_overrides: dict[str, Any] | None = None, producer_overrides: dict[str, Any] | None = None
    ) -> Running:
        settings = load_settings(Env(alert_env(kafka_bootstrap, unique, slack.webhook_url(WEBHOOK_PATH))))
        layout = prepare_topics(settings, kafka_admin)
        service, client = build(
            settings,
            AlerterMetrics(),
            layout,
            client_id="tests-alerter",
            consumer_overrides=consumer_overrides,
            producer_overrides=producer_overrides,
        )
        stop = threading.Event()
        code: list[int] = []
        thread = threading.Thread(
            target=lambda: code.append(serve(service, client, settings.slack_channel, stop)), daemon=True
        )
        thread.start()
        running = Running(settings, service, stop, thread, code)
        started.append(running)
        wait_until(service.ready, 60, "the service to own its partitions")
        return running

    yield start
    for running in started:
        running.stop.set()
        running.thread.join(30)


def _fully_committed(bootstrap: str, running: Running, partitions: int) -> None:
    topic, group = running.settings.source_topic, running.settings.consumer_group
    wait_until(
        lambda: committed(bootstrap, group, topic, partitions) == end_offsets(bootstrap, topic, partitions),
        30,
        "every record to be committed",
    )


def test_refused_alert_that_cannot_be_parked_fails_alone_and_the_loop_goes_on(
    kafka_bootstrap: str,
    readings_topic: Callable[[int], str],
    slack: SlackStandIn,
    run_service: Callable[..., Running],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Slack refuses an alert and librdkafka refuses its dead-letter copy (too large): one line says the alert
    failed and its record stays uncommitted, and the next alert is still delivered."""
    topic = readings_topic(1)
    with caplog.at_level(logging.INFO):
        running = run_service(producer_overrides=SMALL_MESSAGES)
        slack.fail(404, count=1)
        now = time.time()
        placed = produce(kafka_bootstrap, topic, [big_reading("gpu-1", now), reading("gpu-2", 180.0, now + 1)])
        slack.wait_for(lambda got: alert_count(got) >= 1, 30)
        group = running.settings.consumer_group
        wait_until(lambda: committed(kafka_bootstrap, group, topic, 1) == [placed[0][1]], 10, "the commit to hold")
        assert running.thread.is_alive()
    lines = [r.getMessage() for r in caplog.records if "could not handle an alert" in r.getMessage()]
    assert len(lines) == 1
    assert "Message size too large" in lines[0]
    assert "stays uncommitted" in lines[0]
    assert all(r.exc_info is None for r in caplog.records), "no traceback"
    assert sorted(alerts_by_device(slack.received)) == ["gpu-2"]


def test_delivered_alert_whose_record_cannot_be_produced_is_still_delivered_once(
    kafka_bootstrap: str,
    readings_topic: Callable[[int], str],
    slack: SlackStandIn,
    run_service: Callable[..., Running],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Slack accepts an alert whose record librdkafka refuses (too large): it counts as delivered (posting it
    again would repeat it in Slack) and its record is committed, one line says its cooldown will not survive a
    restart, and the next alert is delivered too."""
    topic = readings_topic(1)
    with caplog.at_level(logging.INFO):
        running = run_service(producer_overrides=SMALL_MESSAGES)
        now = time.time()
        produce(kafka_bootstrap, topic, [big_reading("gpu-1", now), reading("gpu-2", 180.0, now + 1)])
        slack.wait_for(lambda got: alert_count(got) >= 2, 30)
        _fully_committed(kafka_bootstrap, running, 1)
        assert running.thread.is_alive()
    lines = [r.getMessage() for r in caplog.records if "could not record a delivered alert" in r.getMessage()]
    assert len(lines) == 1
    assert "cooldown will not survive a restart" in lines[0]
    assert alert_count(slack.received) == 2


def test_dead_notifier_thread_makes_it_unready_and_exit_1_with_one_line(
    kafka_bootstrap: str,
    readings_topic: Callable[[int], str],
    run_service: Callable[..., Running],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Should the notifier thread end while the loop runs, /readyz turns false at once and the loop stops
    with exit code 1 and one line saying why; offsets committed before stay."""
    topic = readings_topic(1)
    with caplog.at_level(logging.INFO):
        running = run_service()
        produce(kafka_bootstrap, topic, [reading(f"gpu-{d}", 60.0, time.time()) for d in range(5)])
        _fully_committed(kafka_bootstrap, running, 1)
        running.service.notifier.stop(timeout=5)  # the thread ends as a crash would end it
        assert not running.service.ready()
        assert running.exit_code() == 1
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1
    assert errors[0].startswith("the notifier thread ended unexpectedly with 0 alerts undelivered")
    assert all(r.exc_info is None for r in caplog.records), "no traceback"
    assert committed(kafka_bootstrap, running.settings.consumer_group, topic, 1) == end_offsets(
        kafka_bootstrap, topic, 1
    )


def test_fatal_consumer_error_exits_1_with_one_line_and_keeps_committed_offsets(
    kafka_bootstrap: str,
    readings_topic: Callable[[int], str],
    run_service: Callable[..., Running],
    unique: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A fatal consumer error (a static member fenced by another with its group.instance.id) ends the loop:
    one line naming the error, exit code 1, no traceback, and the offsets it had committed stay."""
    topic = readings_topic(1)
    instance = {"group.instance.id": f"alerter-{unique}"}
    with caplog.at_level(logging.INFO):
        running = run_service(consumer_overrides=instance)
        produce(kafka_bootstrap, topic, [reading(f"gpu-{d}", 60.0, time.time()) for d in range(5)])
        _fully_committed(kafka_bootstrap, running, 1)
        usurper = Consumer(
            consumer_config(kafka_bootstrap, "tests-usurper", running.settings.consumer_group, "earliest", **instance)
        )
        try:
            usurper.subscribe([topic])
            deadline = time.monotonic() + 60
            while running.thread.is_alive() and time.monotonic() < deadline:
                usurper.poll(0.2)
            assert not running.service.ready()
            assert running.exit_code() == 1
        finally:
            usurper.close()
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR and r.name == "alerter"]
    assert len(errors) == 1
    assert errors[0].startswith("stopping on a Kafka error: ")
    assert "fenced" in errors[0]
    assert all(r.exc_info is None for r in caplog.records), "no traceback"
    assert committed(kafka_bootstrap, running.settings.consumer_group, topic, 1) == end_offsets(
        kafka_bootstrap, topic, 1
    )


def test_hanging_slack_at_shutdown_gets_one_notice_attempt_and_a_clean_exit(
    kafka_bootstrap: str,
    readings_topic: Callable[[int], str],
    slack: SlackStandIn,
    start_alerter: Callable[..., AlerterProcess],
) -> None:
    """With Slack hanging when SIGTERM comes (and the default 10 s Slack timeout), the shutdown notice is
    posted once, not retried; the alerter exits 0 with every record committed."""
    topic = readings_topic(2)
    alerter = start_alerter(SLACK_TIMEOUT="10s", SHUTDOWN_TIMEOUT="10s")
    alerter.wait_ready()
    now = time.time()
    produce(kafka_bootstrap, topic, [reading(f"gpu-{d}", 60.0 + 100 * (d == 0), now + d) for d in range(6)])
    slack.wait_for(lambda got: alert_count(got) >= 1, 30)
    group = alerter.env["CONSUMER_GROUP"]
    wait_until(
        lambda: committed(kafka_bootstrap, group, topic, 2) == end_offsets(kafka_bootstrap, topic, 2),
        30,
        "every record to be committed",
    )
    slack.hang(hold=120)
    before = len(slack.answers)
    assert alerter.stop(timeout=44) == 0, alerter.log[-3000:]
    assert [a.status for a in slack.answers[before:]] == [None], "one attempt at the shutdown notice, unanswered"
    assert "could not send the notification" in alerter.log
    assert "Application shutdown complete" in alerter.log
    assert "Traceback" not in alerter.log
    assert committed(kafka_bootstrap, group, topic, 2) == end_offsets(kafka_bootstrap, topic, 2)
