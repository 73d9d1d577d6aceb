"""The local Slack stand-in speaks the webhook protocol over real HTTP and misbehaves on request."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest
import requests

from alerter.slack import alert_message, notice_message
from slack_stand_in import Behaviour, SlackStandIn, render
from tests.alerter_support import make_alert


@pytest.fixture
def stand_in() -> Iterator[SlackStandIn]:
    with SlackStandIn() as server:
        yield server


def post(url: str, body: object, timeout: float = 5) -> requests.Response:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    return requests.post(url, data=data, headers={"Content-Type": "application/json"}, timeout=timeout)


def test_accepts_valid_messages_like_slack(stand_in: SlackStandIn) -> None:
    """A message with text or attachments gets 200 `ok` and is kept with the path it was posted to."""
    response = post(stand_in.webhook_url("services/T1/B2/x"), notice_message("hello", "#c"))
    assert (response.status_code, response.text) == (200, "ok")
    [received] = stand_in.received
    assert received.path == "/services/T1/B2/x"
    assert received.message["text"] == "hello"


@pytest.mark.parametrize(
    "body",
    [
        b"{not json",
        b"[1, 2]",
        {"username": "x"},
        {"text": ""},
        {"text": 5},
        {"attachments": "x"},
        {"attachments": [{"fields": "x"}]},
    ],
)
def test_rejects_invalid_payloads_like_slack(stand_in: SlackStandIn, body: object) -> None:
    """Bad JSON, or no non-empty text or attachments list, gets 400 `invalid_payload` and is not kept."""
    response = post(stand_in.webhook_url(), body)
    assert (response.status_code, response.text) == (400, "invalid_payload")
    assert stand_in.received == []
    assert stand_in.invalid == 1


def test_fails_for_a_number_of_requests_then_recovers(stand_in: SlackStandIn) -> None:
    """Told to answer 503 twice, it does exactly that, then accepts again."""
    stand_in.fail(503, count=2)
    statuses = [post(stand_in.webhook_url(), notice_message(f"m{i}", "#c")).status_code for i in range(3)]
    assert statuses == [503, 503, 200]
    assert [r.message["text"] for r in stand_in.received] == ["m2"]
    assert stand_in.refused == 2


def test_rate_limits_with_retry_after_for_a_duration(stand_in: SlackStandIn) -> None:
    """Told to rate-limit for a short while, it answers 429 with Retry-After, then accepts."""
    stand_in.rate_limit(retry_after=2, seconds=0.5)
    first = post(stand_in.webhook_url(), notice_message("a", "#c"))
    assert first.status_code == 429
    assert first.headers["Retry-After"] == "2"
    time.sleep(0.6)
    assert post(stand_in.webhook_url(), notice_message("b", "#c")).status_code == 200


def test_hangs_without_answering(stand_in: SlackStandIn) -> None:
    """Told to hang, it holds the request unanswered past the client's timeout and keeps nothing."""
    stand_in.hang(hold=5, count=1)
    with pytest.raises(requests.Timeout):
        post(stand_in.webhook_url(), notice_message("lost", "#c"), timeout=0.3)
    assert post(stand_in.webhook_url(), notice_message("kept", "#c")).status_code == 200
    assert [r.message["text"] for r in stand_in.received] == ["kept"]


def test_control_endpoint_drives_it_from_another_process(stand_in: SlackStandIn) -> None:
    """POST /_control sets the behaviour, GET /_received lists what was kept (from an index on), /_stats counts,
    /healthz answers 200."""
    control = requests.post(stand_in.url + "_control", json={"mode": "error", "status": 500, "count": 1}, timeout=5)
    assert control.status_code == 200
    assert post(stand_in.webhook_url(), notice_message("x", "#c")).status_code == 500
    assert post(stand_in.webhook_url(), notice_message("y", "#c")).status_code == 200
    snapshot = requests.get(stand_in.url + "_received", timeout=5).json()
    assert [m["message"]["text"] for m in snapshot["messages"]] == ["y"]
    assert (snapshot["requests"], snapshot["refused"]) == (2, 1)
    assert requests.get(stand_in.url + "_received?after=1", timeout=5).json()["messages"] == []
    assert requests.get(stand_in.url + "_stats", timeout=5).json() == {
        "accepted": 1,
        "requests": 2,
        "refused": 1,
        "invalid": 0,
    }
    assert requests.get(stand_in.url + "healthz", timeout=5).status_code == 200
    bad = requests.post(stand_in.url + "_control", json={"mode": "explode"}, timeout=5)
    assert bad.status_code == 400


def test_probability_makes_only_a_share_of_requests_misbehave() -> None:
    """With probability 0.5 and a fixed random sequence, exactly the requests drawn below 0.5 get 429."""
    draws = iter([0.1, 0.9, 0.4, 0.6])
    with SlackStandIn(rng=lambda: next(draws)) as server:
        server.behave(Behaviour("rate_limit", status=429, probability=0.5))
        statuses = [post(server.webhook_url(), notice_message(str(i), "#c")).status_code for i in range(4)]
    assert statuses == [429, 200, 429, 200]


def test_render_shows_an_alert_as_one_readable_block() -> None:
    """The printed block carries the title, the text and every field's title and value."""
    block = render(alert_message(make_alert(), "#alerts"), 0.0)
    assert "🔥 GPU IS MELTING 🔥" in block
    assert "Temperature of *201.46°C* detected" in block
    assert "Device ID: gpu-3" in block
    assert "Power Consumption: 412.35 W" in block
    assert "#alerts" in block


def test_program_prints_its_url_and_messages_and_stops_on_sigterm() -> None:
    """`python -m slack_stand_in --port 0` says where it listens, prints what it gets, exits 0 on SIGTERM."""
    process = subprocess.Popen(
        [sys.executable, "-m", "slack_stand_in", "--port", "0"],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline().strip()
        assert line.startswith("listening on http://127.0.0.1:")
        url = line.removeprefix("listening on ")
        assert post(url + "services/x", alert_message(make_alert(), "#alerts")).status_code == 200
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=10)
    finally:
        process.kill()
    assert process.returncode == 0
    assert "Device ID: gpu-3" in output
