"""The local Slack stand-in speaks the webhook protocol over real HTTP and misbehaves on request."""

from __future__ import annotations

import contextlib
import io
import json
import logging
import math
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import pytest
import requests
from hypothesis import given, settings
from hypothesis import strategies as st

from alerter.slack import alert_message, notice_message
from shared.text import is_unsafe
from slack_stand_in import Behaviour, SlackStandIn, render, validate
from slack_stand_in.server import MODES
from tests.alerter_support import make_alert
from tests.support import wait_until


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


@pytest.mark.parametrize(
    "body",
    [
        {"text": "hi", "attachments": None},
        {"attachments": [{"title": "t", "fields": None}]},
        {"attachments": [{"title": None, "text": None, "fields": [{"title": None, "value": None}], "footer": None}]},
        {"text": "hi", "username": None, "channel": None, "icon_emoji": None},
        {"attachments": [{"title": 5, "color": ["x"], "fields": [{"title": {"a": 1}, "value": 2.5}]}]},
    ],
)
def test_nulls_and_odd_types_are_accepted_and_shown(stand_in: SlackStandIn, body: object) -> None:
    """`null` attachments or fields (absent, as Slack reads them) and non-string values are accepted, kept and
    rendered: a 200 answer, never a dropped connection."""
    response = post(stand_in.webhook_url(), body)
    assert (response.status_code, response.text) == (200, "ok")
    [received] = stand_in.received
    assert render(received.message, received.at).startswith("── Slack")


@pytest.mark.parametrize(
    "body",
    [
        b"[" * 100_000 + b"]" * 100_000,
        b'{"text": "x", "n": NaN}',
        b'{"text": "x", "n": Infinity}',
        b'{"text": "x", "n": ' + b"9" * 5000 + b"}",
        b"\xff\xfe{}",
        b"",
    ],
)
def test_bodies_it_cannot_read_are_refused_like_slack(stand_in: SlackStandIn, body: bytes) -> None:
    """Nesting 100,000 deep, NaN or Infinity, a 5,000-digit number, invalid UTF-8, an empty body: 400 with Slack's
    `invalid_payload`, counted as invalid, and the server goes on answering."""
    response = post(stand_in.webhook_url(), body)
    assert (response.status_code, response.text) == (400, "invalid_payload")
    assert (stand_in.invalid, stand_in.accepted) == (1, 0)
    assert post(stand_in.webhook_url(), notice_message("next", "#c")).status_code == 200


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20,
)
message_like = st.fixed_dictionaries(
    {},
    optional={
        "text": json_values,
        "username": json_values,
        "channel": json_values,
        "attachments": st.none() | st.lists(
            st.fixed_dictionaries({}, optional={
                "title": json_values, "text": json_values, "color": json_values, "footer": json_values,
                "fields": st.none() | st.lists(st.dictionaries(st.sampled_from(["title", "value"]), json_values)),
            }),
            max_size=3,
        ),
    },
)


@settings(max_examples=300, deadline=None)
@given(st.one_of(message_like, json_values))
def test_every_body_is_either_accepted_and_renderable_or_refused(message: object) -> None:
    """Whatever JSON is posted, the stand-in either accepts it and can show it (with nothing hidden or
    line-breaking but the line breaks it adds), or refuses it: never accepted and then lost."""
    accepted = validate(json.dumps(message).encode())
    if accepted is None:
        return
    block = render(accepted, 0.0)
    assert [c for c in block.replace("\n", "") if is_unsafe(c)] == []


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(["mode", "status", "retry_after", "hold", "count", "seconds", "probability"]),
                       json_values | st.floats() | st.sampled_from(["1\r\nX-Injected: yes", "x\n", "ok", "hang"])))
def test_every_control_request_is_a_valid_behaviour_or_a_value_error(data: dict[str, object]) -> None:
    """Any control object gives a behaviour whose every value is in range, or a ValueError (a one-line 400)."""
    try:
        behaviour = Behaviour.from_json(data)
    except ValueError:
        return
    assert behaviour.mode in MODES
    assert 100 <= behaviour.status <= 599
    assert 0.0 <= behaviour.probability <= 1.0
    assert 0.0 <= behaviour.hold <= 600
    assert behaviour.count is None or behaviour.count >= 0
    assert behaviour.seconds is None or 0.0 <= behaviour.seconds < math.inf
    if isinstance(behaviour.retry_after, str):
        assert "\r" not in behaviour.retry_after
        assert "\n" not in behaviour.retry_after
    else:
        assert 0.0 <= behaviour.retry_after <= 86_400


@pytest.mark.parametrize(
    ("control", "message"),
    [
        ({"mode": "rate_limit", "retry_after": "1\r\nX-Injected: yes"}, "retry_after text"),
        ({"mode": "error", "count": -1}, "count must be"),
        ({"mode": "error", "count": 1.5}, "count must be"),
        ({"mode": "error", "count": True}, "count must be"),
        ({"mode": "error", "seconds": -1}, "seconds must be"),
        ({"mode": "hang", "hold": 1e9}, "hold must be"),
        ({"mode": "error", "status": "500"}, "status must be"),
        ({"mode": "error", "probability": 2}, "probability must be"),
        ({"mode": ["ok"]}, "mode must be"),
        ({"mode": "error", "bogus\r\nX: y": 1}, "unknown keys: bogus\\r\\nX: y"),
    ],
)
def test_control_values_are_checked_with_a_one_line_400(
    stand_in: SlackStandIn, control: dict[str, object], message: str
) -> None:
    """A CRLF meant to add response headers, a negative or fractional count, a negative duration, an absurd hold,
    a status given as text, a probability over 1: each is a 400 of one line, and the behaviour stays as it was."""
    response = requests.post(stand_in.url + "_control", json=control, timeout=5)
    assert response.status_code == 400
    assert message in response.text
    assert len(response.text.splitlines()) == 1
    assert "X-Injected" not in response.headers
    assert post(stand_in.webhook_url(), notice_message("still ok", "#c")).status_code == 200


def test_nan_durations_are_refused_from_json_and_from_python(stand_in: SlackStandIn) -> None:
    """NaN (which JSON does not even allow) is refused over HTTP, and the Python API refuses it too."""
    response = requests.post(stand_in.url + "_control", data=b'{"mode": "error", "seconds": NaN}', timeout=5)
    assert response.status_code == 400
    with pytest.raises(ValueError, match="seconds must be"):
        stand_in.fail(500, seconds=float("nan"))
    with pytest.raises(ValueError, match="retry_after text"):
        stand_in.rate_limit("1\r\nX-Injected: yes")


def test_keeps_only_the_last_messages_with_exact_counts() -> None:
    """With keep=3 and five messages accepted, the last three are kept; `accepted` says 5, and `?after=N` lists what
    is kept after the first N, with `first` telling how many came before the first one listed."""
    with SlackStandIn(keep=3) as server:
        for i in range(5):
            assert post(server.webhook_url(), notice_message(f"m{i}", "#c")).status_code == 200
        assert [r.message["text"] for r in server.received] == ["m2", "m3", "m4"]

        def listed(after: int) -> tuple[int, list[str], int]:
            got = requests.get(f"{server.url}_received?after={after}", timeout=5).json()
            return got["first"], [m["message"]["text"] for m in got["messages"]], got["accepted"]

        assert listed(0) == (2, ["m2", "m3", "m4"], 5)
        assert listed(3) == (3, ["m3", "m4"], 5)
        assert listed(5) == (5, [], 5)
        assert listed(9) == (5, [], 5)
        assert requests.get(f"{server.url}_stats", timeout=5).json()["accepted"] == 5


@pytest.mark.parametrize("after", ["-1", "abc", "²", "1e3", "9" * 40])
def test_after_must_be_a_whole_number(stand_in: SlackStandIn, after: str) -> None:
    """`?after=` with anything but a whole number >= 0 is a one-line 400, not a dropped connection or silently 0."""
    response = requests.get(f"{stand_in.url}_received", params={"after": after}, timeout=5)
    assert response.status_code == 400
    assert response.text.startswith("invalid_after")


def test_rendering_escapes_terminal_control_sequences() -> None:
    """A message cannot clear the terminal or hide text where the stand-in prints it: escapes are shown as text."""
    block = render({"text": "hi\x1b[2J\u202egnp.exe", "attachments": [{"title": "t\rX", "fields": []}]}, 0.0)
    assert "\x1b" not in block
    assert "\\x1b[2J\\u202egnp.exe" in block
    assert "t\\rX" in block


def test_a_broken_echo_stream_costs_a_log_line_not_the_answer(caplog: pytest.LogCaptureFixture) -> None:
    """When stdout is gone (a closed pipe), a post is still answered 200 and kept; one line says printing failed."""
    echo = io.StringIO()
    echo.close()
    with SlackStandIn(echo=echo) as server, caplog.at_level(logging.WARNING, logger="slack_stand_in"):
        assert post(server.webhook_url(), notice_message("kept", "#c")).status_code == 200
        assert [r.message["text"] for r in server.received] == ["kept"]
    assert any("cannot print a message: ValueError" in r.getMessage() for r in caplog.records)


def test_half_sent_requests_hold_a_bounded_number_of_threads() -> None:
    """200 connections that never finish a request hold at most `max_connections` threads; the stand-in then
    answers as before once their time is up."""
    before = threading.active_count()
    with SlackStandIn(max_connections=4, request_timeout=0.5) as server:
        clients = []
        try:
            for _ in range(200):
                sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
                sock.sendall(b"POST /services/x HTTP/1.1\r\nContent-Length: 10\r\n\r\n{")
                clients.append(sock)
            peak = threading.active_count()
            for sock in clients:
                with contextlib.suppress(ConnectionResetError):
                    assert sock.recv(1024) == b""
        finally:
            for sock in clients:
                sock.close()
        assert peak <= before + 1 + 4, f"{peak - before} threads for 200 half-sent requests"
        assert post(server.webhook_url(), notice_message("after", "#c")).status_code == 200


def test_program_refuses_a_bad_port_in_one_line() -> None:
    """`--port 70000` is an argparse error naming the option, not a traceback from bind."""
    result = subprocess.run([sys.executable, "-m", "slack_stand_in", "--port", "70000"], capture_output=True,
                            text=True, timeout=30)
    assert result.returncode == 2
    assert "argument --port: expected an integer from 0 to 65535, got '70000'" in result.stderr
    assert "Traceback" not in result.stderr


def test_an_idle_keep_alive_connection_is_closed_quietly(caplog: pytest.LogCaptureFixture) -> None:
    """A client's pooled connection left idle past the request timeout is closed without a log line (that is no
    error), while a request cut off half-way is one line."""
    with SlackStandIn(request_timeout=0.3) as server, caplog.at_level(logging.INFO, logger="slack_stand_in"):
        idle = socket.create_connection(("127.0.0.1", server.port), timeout=10)
        body = json.dumps(notice_message("pooled", "#c")).encode()
        idle.sendall(b"POST /services/x HTTP/1.1\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
        answer = b""
        while b"\r\n\r\nok" not in answer:
            answer += idle.recv(1024)
        assert idle.recv(1024) == b"", "closed once idle past the timeout"
        idle.close()
        assert caplog.records == []
        partial = socket.create_connection(("127.0.0.1", server.port), timeout=10)
        partial.sendall(b"POST /services/x HTTP/1.1\r\n")
        assert partial.recv(1024) == b""
        partial.close()
        wait_until(lambda: caplog.records, 10, "the timed-out request's line")
    [record] = caplog.records
    assert "Request timed out" in record.getMessage()
