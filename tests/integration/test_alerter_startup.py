"""Start-up against a cluster that does not answer: one clear line per attempt, then a non-zero exit."""

from __future__ import annotations

import json
import socket
from collections.abc import Callable

import pytest

from tests.alerter_support import WEBHOOK_PATH, AlerterProcess

pytestmark = pytest.mark.integration


def test_unreachable_cluster_is_retried_then_given_up(start_alerter: Callable[..., AlerterProcess]) -> None:
    """With nothing listening at REDPANDA_BROKERS, each attempt is logged with its number, and after
    STARTUP_ATTEMPTS the alerter exits 1 with a message naming the brokers (and never the webhook URL);
    with LOG_FORMAT=json every line is one JSON object."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    alerter = start_alerter(
        REDPANDA_BROKERS=f"127.0.0.1:{port}", STARTUP_ATTEMPTS="2", STARTUP_BACKOFF_MAX="200ms", LOG_FORMAT="json"
    )
    assert alerter.process.wait(60) == 1
    lines = [json.loads(line) for line in alerter.log.splitlines()]
    events = [(line["level"], line["event"]) for line in lines]
    first_try = f"Kafka cluster at 127.0.0.1:{port} not reachable (attempt 1/2: "
    assert [level for level, event in events if event.startswith(first_try)] == ["warning"]
    assert (
        "error",
        f"Kafka cluster at 127.0.0.1:{port} not reachable after 2 attempts (STARTUP_ATTEMPTS=2); giving up",
    ) in events
    assert "Traceback" not in alerter.log
    assert WEBHOOK_PATH not in alerter.log
