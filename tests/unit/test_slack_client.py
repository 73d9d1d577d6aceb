"""The webhook client against the real local stand-in: accepted, retried, refused, and never leaking the URL."""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest
import requests

from alerter.receiver import RETRY_AFTER_MAX, Attempt, Outcome, Retry
from alerter.receiver import deliver as retrying
from alerter.settings import Secret
from alerter.slack import WebhookClient, encode_message, notice_message
from shared.logs import configure_logging
from slack_stand_in import SlackStandIn
from tests.raw_http import RawHttpServer

WEBHOOK_PATH = "services/T0SECRET/B0SECRET/tokentokentoken"
PAYLOAD = encode_message(notice_message("hello", "#c"))


@pytest.fixture
def stand_in() -> Iterator[SlackStandIn]:
    with SlackStandIn() as server:
        yield server


RETRY = Retry(initial=0.01, maximum=0.05, rng=lambda: 1.0)


def client_for(url: str, timeout: float = 2.0) -> WebhookClient:
    return WebhookClient(Secret(url), timeout=timeout)


def deliver(client: WebhookClient, attempts: int | None = None) -> tuple[Attempt, list[tuple[Attempt, float]]]:
    """The notifier's retry loop (alerter.receiver.deliver) around the client, without waiting."""
    retries: list[tuple[Attempt, float]] = []
    result = retrying(
        lambda: client.post(PAYLOAD),
        RETRY,
        name="Slack",
        wait=lambda _delay: True,
        on_retry=lambda a, d: retries.append((a, d)),
        attempts=attempts,
    )
    return result, retries


def test_accepted_on_200(stand_in: SlackStandIn) -> None:
    """A 200 from the webhook is an accepted delivery, posted once."""
    attempt, retries = deliver(client_for(stand_in.webhook_url(WEBHOOK_PATH)))
    assert attempt.outcome is Outcome.ACCEPTED
    assert retries == []
    assert len(stand_in.received) == 1


def test_5xx_is_retried_until_accepted(stand_in: SlackStandIn) -> None:
    """500s are retried with growing backoff; the message arrives once Slack recovers."""
    stand_in.fail(500, count=3)
    attempt, retries = deliver(client_for(stand_in.webhook_url(WEBHOOK_PATH)))
    assert attempt.outcome is Outcome.ACCEPTED
    assert [a.reason for a, _ in retries] == ["server_error"] * 3
    assert [d for _, d in retries] == [0.01, 0.02, 0.04]
    assert len(stand_in.received) == 1


def test_429_waits_what_retry_after_says(stand_in: SlackStandIn) -> None:
    """A 429 is retried after exactly the Retry-After seconds, not the exponential backoff."""
    stand_in.rate_limit(retry_after=7, count=1)
    attempt, retries = deliver(client_for(stand_in.webhook_url(WEBHOOK_PATH)))
    assert attempt.outcome is Outcome.ACCEPTED
    assert [(a.reason, a.status, d) for a, d in retries] == [("rate_limited", 429, 7.0)]


def test_retry_after_zero_still_waits_the_initial_backoff(stand_in: SlackStandIn) -> None:
    """`Retry-After: 0` does not make the retry loop spin: each retry waits at least the initial backoff."""
    stand_in.rate_limit(retry_after=0, count=2)
    attempt, retries = deliver(client_for(stand_in.webhook_url(WEBHOOK_PATH)))
    assert attempt.outcome is Outcome.ACCEPTED
    assert [(a.retry_after, d) for a, d in retries] == [(0.0, 0.01), (0.0, 0.01)]


def test_retry_after_date_in_the_past_still_waits_the_initial_backoff(stand_in: SlackStandIn) -> None:
    """A `Retry-After` HTTP date already past counts as no wait asked, so the initial backoff applies."""
    stand_in.rate_limit(retry_after=format_datetime(datetime.now(UTC) - timedelta(hours=1), usegmt=True), count=1)
    attempt, retries = deliver(client_for(stand_in.webhook_url(WEBHOOK_PATH)))
    assert attempt.outcome is Outcome.ACCEPTED
    assert [(a.reason, a.retry_after, d) for a, d in retries] == [("rate_limited", 0.0, 0.01)]


def test_absurd_retry_after_is_capped_and_logged(stand_in: SlackStandIn, caplog: pytest.LogCaptureFixture) -> None:
    """A two-hour `Retry-After` waits RETRY_AFTER_MAX instead, and one warning says so."""
    stand_in.rate_limit(retry_after=7200, count=1)
    with caplog.at_level(logging.WARNING, logger="alerter.receiver"):
        attempt, retries = deliver(client_for(stand_in.webhook_url(WEBHOOK_PATH)))
    assert attempt.outcome is Outcome.ACCEPTED
    assert [d for _, d in retries] == [RETRY_AFTER_MAX]
    assert [r.getMessage() for r in caplog.records] == [
        f"Slack asked to wait 7200s before retrying (Retry-After); waiting {RETRY_AFTER_MAX:.0f}s instead"
    ]


def test_other_4xx_is_refused_at_once_with_status_and_body(stand_in: SlackStandIn) -> None:
    """A 404 (say, a deleted webhook) is not retried; the attempt carries the status and Slack's body."""
    stand_in.fail(404, count=1)
    attempt, retries = deliver(client_for(stand_in.webhook_url(WEBHOOK_PATH)))
    assert attempt.outcome is Outcome.REJECTED
    assert (attempt.status, attempt.body) == (404, "refused")
    assert retries == []


def test_hang_times_out_and_is_retried(stand_in: SlackStandIn) -> None:
    """A webhook that does not answer within the timeout is retried, and the next answer counts."""
    stand_in.hang(hold=5, count=1)
    attempt, retries = deliver(client_for(stand_in.webhook_url(WEBHOOK_PATH), timeout=0.3))
    assert attempt.outcome is Outcome.ACCEPTED
    assert [a.reason for a, _ in retries] == ["timeout"]


def test_connection_refused_is_retried_and_reported_without_the_url() -> None:
    """Nothing listening is a retryable connection error described by its type, never by the URL."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    client = client_for(f"http://127.0.0.1:{port}/{WEBHOOK_PATH}")
    attempt, retries = deliver(client, attempts=2)
    assert attempt.outcome is Outcome.RETRY
    assert attempt.reason == "connection"
    assert len(retries) == 1
    assert "SECRET" not in attempt.describe()
    assert "SECRET" not in repr(attempt)
    assert "SECRET" not in repr(client)


def test_deliver_stops_when_told(stand_in: SlackStandIn) -> None:
    """When `wait` says stop (shutdown, partition revoked), delivery ends with the last failure."""
    stand_in.fail(500)
    client = client_for(stand_in.webhook_url(WEBHOOK_PATH))
    attempt = retrying(lambda: client.post(PAYLOAD), RETRY, name="Slack", wait=lambda _delay: False)
    assert attempt.outcome is Outcome.RETRY
    assert stand_in.requests == 1


def test_secret_never_prints() -> None:
    """The webhook URL is hidden in repr and str; only reveal() gives it."""
    secret = Secret(f"https://hooks.slack.com/{WEBHOOK_PATH}")
    assert "SECRET" not in repr(secret)
    assert "SECRET" not in str(secret)
    assert "SECRET" not in f"{secret}"
    assert secret.reveal().endswith(WEBHOOK_PATH)


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_a_broken_header_line_does_not_leak_the_url_into_the_log(
    fmt: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A response with a malformed header line makes urllib3 log the full request URL at WARNING, with a traceback;
    the log handler blanks the webhook's URL and path and makes it one line, whatever the format."""
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        configure_logging("info", fmt)
        with RawHttpServer() as server:
            client = client_for(server.url(WEBHOOK_PATH))
            attempt = client.post(PAYLOAD)
            client.close()
        err = capsys.readouterr().err
    finally:
        root.handlers[:], _ = saved
        root.setLevel(saved[1])
    assert server.requests == 1
    assert attempt.outcome is Outcome.ACCEPTED
    assert "Failed to parse headers (url=********)" in err, err
    assert len(err.strip().splitlines()) == 1, err
    assert "(HeaderParsingError)" in err
    assert "SECRET" not in err
    assert "tokentoken" not in err


def test_an_unusable_url_is_one_refused_attempt_not_an_exception() -> None:
    """A host label of 64 characters makes urllib3 raise LocationParseError (not a requests error); the post is one
    REJECTED attempt with reason `invalid_url`, which names the error type and never the URL."""
    client = client_for("http://" + "a" * 64 + f".localhost:9/{WEBHOOK_PATH}")
    attempt, retries = deliver(client)
    assert (attempt.outcome, attempt.reason, attempt.error) == (Outcome.REJECTED, "invalid_url", "LocationParseError")
    assert retries == []
    assert "SECRET" not in attempt.describe()
    assert "aaaa" not in repr(attempt)


class _ExplodingSession(requests.Session):
    """A session whose transport fails with an error no HTTP library documents (a bug, an encoder, memory)."""

    def post(self, *_args: object, **_kwargs: object) -> requests.Response:
        raise RuntimeError(f"boom while posting to https://hooks.slack.com/{WEBHOOK_PATH}")


def test_any_other_error_of_a_post_is_a_failed_attempt_with_its_type_only() -> None:
    """Whatever a post raises becomes one retryable attempt (reason `error`, the exception's type), never an exception
    that ends the sender or the start-up notice, and never the exception's text (it may hold the URL)."""
    client = WebhookClient(Secret(f"https://hooks.slack.com/{WEBHOOK_PATH}"), timeout=1, session=_ExplodingSession())
    attempt = client.post(PAYLOAD)
    assert (attempt.outcome, attempt.reason, attempt.error) == (Outcome.RETRY, "error", "RuntimeError")
    assert "SECRET" not in attempt.describe()
