"""Fixtures for the alerter's integration tests: a Slack stand-in, fresh topics, alerter processes cleaned up."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from confluent_kafka.admin import AdminClient

from shared.kafka import ensure_topic
from slack_stand_in import SlackStandIn
from tests.alerter_support import WEBHOOK_PATH, AlerterProcess, alert_env


@pytest.fixture
def slack() -> Iterator[SlackStandIn]:
    """A real HTTP server speaking the incoming-webhook protocol on loopback."""
    with SlackStandIn() as server:
        yield server


@pytest.fixture
def readings_topic(kafka_admin: AdminClient, unique: str) -> Callable[[int], str]:
    """Creates the test's readings topic (`readings-<unique>`, as alert_env names it) with n partitions."""

    def create(partitions: int) -> str:
        topic = f"readings-{unique}"
        ensure_topic(kafka_admin, topic, partitions=partitions, replication_factor=2)
        return topic

    return create


@pytest.fixture
def start_alerter(
    kafka_bootstrap: str, unique: str, slack: SlackStandIn, tmp_path: Path
) -> Iterator[Callable[..., AlerterProcess]]:
    """Starts `python -m alerter` for this test's topics; every one started is stopped afterwards."""
    started: list[AlerterProcess] = []

    def start(**overrides: str) -> AlerterProcess:
        env = alert_env(kafka_bootstrap, unique, slack.webhook_url(WEBHOOK_PATH), **overrides)
        process = AlerterProcess(env, tmp_path / f"alerter-{len(started)}.log")
        started.append(process)
        return process

    yield start
    for process in started:
        process.stop(timeout=15)
