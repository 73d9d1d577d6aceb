"""Fixtures shared by the whole suite: a real Kafka cluster and names that never collide."""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka.admin import AdminClient

from shared.kafka import admin_client

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    """Bootstrap servers of a real cluster.

    KAFKA_BOOTSTRAP_SERVERS when set (`make test` sets it to the local cluster it
    started; a user may point it at their own Redpanda or Kafka), else the local
    two-broker cluster, started here and stopped after (a bare `pytest` run).
    """
    configured = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if configured:
        yield configured
        return
    script = REPO / "scripts" / "local-kafka"
    was_running = subprocess.run([script, "status"], capture_output=True).returncode == 0
    result = subprocess.run([script, "up"], capture_output=True, text=True)
    if result.returncode != 0:
        pytest.fail(f"could not start the local Kafka cluster: {result.stderr.strip()}")
    try:
        yield result.stdout.strip().splitlines()[-1]
    finally:
        if not was_running:
            subprocess.run([script, "down"], capture_output=True)


@pytest.fixture(scope="session")
def kafka_admin(kafka_bootstrap: str) -> AdminClient:
    return admin_client(kafka_bootstrap, "tests-admin")


@pytest.fixture
def unique() -> str:
    """A suffix for topic and group names, so tests never read each other's records."""
    return uuid.uuid4().hex[:12]
