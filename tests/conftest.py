"""Fixtures shared by the whole suite: a real Kafka cluster and names that never collide; Hypothesis profiles."""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka.admin import AdminClient
from hypothesis import settings

from shared.kafka import admin_client

REPO = Path(__file__).resolve().parent.parent

# HYPOTHESIS_PROFILE picks one. `ci` (.ci/run) explores the same examples on every run, so CI cannot flake and a
# failure there replays anywhere; `hunt` explores 20 times as many as the default, a long search to run (with a few
# --hypothesis-seed values, and --timeout=0: a hunt outlasts pytest-timeout's limit) before changing a property or
# the code it covers. A test that sets its own max_examples keeps it unless it scales it by
# settings().max_examples / 100, as tests/unit/test_forecast.py does.
settings.register_profile("default", max_examples=100)
settings.register_profile("ci", max_examples=100, derandomize=True, database=None, print_blob=True)
settings.register_profile("hunt", max_examples=2000, deadline=None, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))


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
