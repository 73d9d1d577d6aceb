"""The real alerter process against hostile peers: its log never holds the webhook secret or text that hides itself."""

from __future__ import annotations

import json
import socket
import struct
import time
import unicodedata
from collections.abc import Callable

import pytest

from shared.text import UNSAFE_CATEGORIES
from slack_stand_in import SlackStandIn
from tests.alerter_support import WEBHOOK_PATH, AlerterProcess, alerts_by_device, produce, reading
from tests.raw_http import RawHttpServer
from tests.support import wait_until

pytestmark = pytest.mark.integration

HOSTILE_DEVICE = "gpu-7\u202e1-ved\u200b\n2026-01-01 00:00:00 INFO forged: ok\u2028"
HOSTILE_HOST = "node-1\u2029Temperature: 20°C\x85\x9b"


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_a_broken_header_from_the_webhook_never_puts_the_url_in_the_alerters_log(
    fmt: str, kafka_bootstrap: str, readings_topic: Callable[[int], str], start_alerter: Callable[..., AlerterProcess]
) -> None:
    """A webhook answering with a malformed header line makes urllib3 log "Failed to parse headers (url=...)" for the
    start-up notice and for an alert; the alerter's captured log shows those lines with the URL blanked."""
    topic = readings_topic(1)
    with RawHttpServer() as webhook:
        alerter = start_alerter(SLACK_WEBHOOK_URL=webhook.url(WEBHOOK_PATH), LOG_FORMAT=fmt)
        wait_until(lambda: webhook.requests >= 1, 60, "the start-up notice")
        produce(kafka_bootstrap, topic, [reading("gpu-1", 190.0, time.time())])
        wait_until(lambda: webhook.requests >= 2, 60, "the alert")
        _reset_mid_request(alerter.port)  # an aborted scrape: one line in the log's own format, no traceback
        wait_until(lambda: "ConnectionResetError" in alerter.log, 30, "the aborted scrape's log line")
        assert alerter.stop() == 0
    log = alerter.log
    assert "on port" in log
    assert "(bound to 127.0.0.1)" in log, "METRICS_HOST defaults to loopback"
    assert "Traceback" not in log
    assert log.count("Failed to parse headers (url=********)") >= 2, log
    assert "SECRET" not in log
    assert WEBHOOK_PATH.rsplit("/", 1)[-1] not in log
    if fmt == "json":
        assert all(line.startswith("{") for line in log.splitlines() if line.strip()), log


def test_hostile_reading_text_is_escaped_in_slack_and_in_the_log(
    kafka_bootstrap: str,
    readings_topic: Callable[[int], str],
    slack: SlackStandIn,
    start_alerter: Callable[..., AlerterProcess],
) -> None:
    """A device id and host name with bidi overrides, zero-width, C1 and line-breaking characters reach Slack and
    the text log as visible escapes: nothing invisible, no forged line."""
    topic = readings_topic(1)
    produce(kafka_bootstrap, topic, [reading(HOSTILE_DEVICE, 190.0, time.time(), host_name=HOSTILE_HOST)])
    alerter = start_alerter()
    [alert] = wait_until(lambda: [a for v in alerts_by_device(slack.received).values() for a in v], 60, "the alert")
    assert alerter.stop() == 0
    fields = alert["by_title"]
    assert fields["Device ID"] == "gpu-7\\u202e1-ved\\u200b\\n2026-01-01 00:00:00 INFO forged: ok\\u2028"
    assert fields["Host"] == "node-1\\u2029Temperature: 20°C\\x85\\x9b"
    assert _unsafe(json.dumps(alert, ensure_ascii=False)) == []
    log = alerter.log
    assert _unsafe(log.replace("\n", "")) == []
    assert not any(line.startswith("2026-01-01 00:00:00 INFO forged") for line in log.splitlines())
    assert "Device gpu-7\\u202e1-ved\\u200b\\n2026-01-01" in log


def _reset_mid_request(port: int) -> None:
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    sock.sendall(b"GET /metr")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def _unsafe(text: str) -> list[str]:
    return [c for c in text if unicodedata.category(c) in UNSAFE_CATEGORIES]
