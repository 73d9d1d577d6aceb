"""The Alertmanager client and receiver against a real local server that answers 2xx, 4xx, 5xx, hangs or garbage:
each answer classified, retried or not, counted, and no credential of the URL in any log line, attempt or metric."""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from alerter.alertmanager import (
    AlertmanagerClient,
    AlertmanagerMetrics,
    AlertmanagerReceiver,
    GpuAlert,
    Kind,
    ResendPolicy,
    postable,
    rfc3339,
)
from alerter.domain.notification import Kind as NotificationKind
from alerter.domain.notification import Notification
from alerter.receiver import RETRY_AFTER_MAX, Attempt, Outcome, Retry, Sighting
from alerter.receiver import deliver as deliver_until_settled
from alerter.settings import Endpoint
from shared.models import AlertEvent
from tests.alertmanager_support import Answer, ScriptedServer, http_answer
from tests.support import free_ports

T0 = 1_800_000_000.0
ALERT = GpuAlert(Kind.CRITICAL, "gpu-0003", "node-07", "A100", 95.0, 90.0, T0 - 2)
PAYLOAD = [postable(ALERT, T0 + 240)]
USER, PASSWORD, TOKEN = "am-user", "pa55-w0rd-xyz", "tok-9f8e7d6c"  # fakes, to look for in every output


class Clock:
    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


RETRY = Retry(initial=0.01, maximum=0.05, rng=lambda: 1.0)  # waits 0.01, 0.02, 0.04, 0.05...


def client_for(url: str, registry: CollectorRegistry, timeout: float = 2.0) -> AlertmanagerClient:
    return AlertmanagerClient(Endpoint.parse(url), timeout=timeout, metrics=AlertmanagerMetrics(registry))


def receiver_of(client: AlertmanagerClient, interval: float, clock: Clock | None = None) -> AlertmanagerReceiver:
    return AlertmanagerReceiver(client, ResendPolicy(interval), RETRY, clock=clock or Clock())


@pytest.fixture
def server() -> Iterator[ScriptedServer]:
    with ScriptedServer() as s:
        yield s


def secret_url(server: ScriptedServer) -> str:
    return server.url(auth=f"{USER}:{PASSWORD}", path="/am", query=f"token={TOKEN}")


def deliver(client: AlertmanagerClient, attempts: int | None = None) -> tuple[Attempt, list[tuple[Attempt, float]]]:
    """The client's posts, retried as the notifier retries them (alerter.receiver.deliver)."""
    retries: list[tuple[Attempt, float]] = []
    result = deliver_until_settled(
        lambda: client.post(PAYLOAD),
        RETRY,
        name="Alertmanager",
        wait=lambda _delay: True,
        on_retry=lambda a, d: retries.append((a, d)),
        attempts=attempts,
    )
    return result, retries


def posts(registry: CollectorRegistry, result: str) -> float:
    return registry.get_sample_value("gpu_alerter_alertmanager_posts_total", {"result": result}) or 0.0


def test_accepted_post_carries_the_alerts_auth_and_query(server: ScriptedServer, registry: CollectorRegistry) -> None:
    """A 200 is accepted: one POST of the JSON array to /api/v2/alerts, query kept, credentials as Basic auth."""
    attempt, retries = deliver(client_for(secret_url(server), registry))
    assert (attempt.outcome, attempt.reason, retries) == (Outcome.ACCEPTED, "accepted", [])
    [request] = server.requests
    assert request.head.startswith(f"POST /am/api/v2/alerts?token={TOKEN} HTTP/1.1")
    assert "content-type: application/json" in request.head.lower()
    assert f"Basic {base64.b64encode(f'{USER}:{PASSWORD}'.encode()).decode()}" in request.head
    assert json.loads(request.body) == PAYLOAD
    assert posts(registry, "accepted") == 1


def test_garbage_body_on_200_is_still_accepted(registry: CollectorRegistry) -> None:
    """Alertmanager's answer body is not parsed: any 2xx means the alerts are stored."""
    with ScriptedServer(http_answer(200, "\x00{{not json")) as server:
        assert deliver(client_for(server.url(), registry))[0].outcome is Outcome.ACCEPTED


def test_400_is_refused_for_good_after_one_try(registry: CollectorRegistry) -> None:
    """A 400 (Alertmanager refusing our payload) is not retried: refused as `invalid`, its short answer kept."""
    with ScriptedServer(http_answer(400, '"start time must be before end time"')) as server:
        attempt, retries = deliver(client_for(server.url(), registry))
        assert (attempt.outcome, attempt.reason, attempt.status) == (Outcome.REJECTED, "invalid", 400)
        assert attempt.describe() == 'HTTP 400 "start time must be before end time"'
        assert retries == []
        assert len(server.requests) == 1
    assert posts(registry, "invalid") == 1


@pytest.mark.parametrize("status", [301, 401, 403, 404, 405, 413])
def test_other_4xx_and_redirects_are_refused(status: int, registry: CollectorRegistry) -> None:
    """A redirect or a 4xx other than 400/408/429 means a wrong URL or credentials: refused, not followed."""
    with ScriptedServer(http_answer(status, "no", {"Location": "http://127.0.0.1:1/"})) as server:
        attempt, _ = deliver(client_for(server.url(), registry))
        assert (attempt.outcome, attempt.reason, attempt.status) == (Outcome.REJECTED, "refused", status)
        assert len(server.requests) == 1


def test_5xx_is_retried_with_growing_backoff(registry: CollectorRegistry) -> None:
    """500s are retried after 0.01, 0.02, 0.04 s (exponential, capped), and the alert arrives once they stop."""
    with ScriptedServer(*[http_answer(500, "boom")] * 3) as server:
        attempt, retries = deliver(client_for(server.url(), registry))
        assert attempt.outcome is Outcome.ACCEPTED
        assert [(a.reason, d) for a, d in retries] == [
            ("server_error", 0.01),
            ("server_error", 0.02),
            ("server_error", 0.04),
        ]
        assert len(server.requests) == 4
    assert (posts(registry, "server_error"), posts(registry, "accepted")) == (3, 1)


def test_retry_after_is_honoured_within_bounds(registry: CollectorRegistry) -> None:
    """A 503's Retry-After is waited; a 429 asking for an hour waits 5 min; Retry-After 0 waits the backoff floor."""
    answers = [
        http_answer(503, "", {"Retry-After": "2"}),
        http_answer(429, "", {"Retry-After": "3600"}),
        http_answer(429, "", {"Retry-After": "0"}),
    ]
    with ScriptedServer(*answers) as server:
        attempt, retries = deliver(client_for(server.url(), registry))
    assert attempt.outcome is Outcome.ACCEPTED
    assert [(a.reason, d) for a, d in retries] == [
        ("server_error", 2.0),
        ("rate_limited", RETRY_AFTER_MAX),
        ("rate_limited", 0.01),
    ]


def test_a_hanging_server_is_a_timeout_and_retried(registry: CollectorRegistry) -> None:
    """A server that never answers costs the timeout, then the post is retried."""
    with ScriptedServer("hang") as server:
        attempt, retries = deliver(client_for(server.url(), registry, timeout=0.3))
    assert attempt.outcome is Outcome.ACCEPTED
    assert [(a.reason, a.error) for a, _ in retries] == [("timeout", "ReadTimeout")]


@pytest.mark.parametrize(
    "answer",
    [b"SSH-2.0-OpenSSH_9.2\r\n\r\n", b"HTTP/1.1 abc\r\n\r\n", b"\xff\xfe\x00garbage", "close"],
)
def test_garbage_or_a_dropped_connection_is_retried(answer: bytes | str, registry: CollectorRegistry) -> None:
    """Bytes that are not HTTP, or a connection closed without an answer, are one failed attempt and a retry."""
    with ScriptedServer(answer) as server:
        attempt, retries = deliver(client_for(server.url(), registry))
    assert attempt.outcome is Outcome.ACCEPTED
    [(failed, _)] = retries
    assert failed.outcome is Outcome.RETRY
    assert failed.reason in ("connection", "error")
    assert failed.error


def test_connection_refused_is_retried_until_told_to_stop(registry: CollectorRegistry) -> None:
    """Nobody listening is a `connection` failure (ConnectionRefusedError); `wait` returning False ends the loop."""
    client = client_for(f"http://127.0.0.1:{free_ports(1)[0]}", registry)
    waits: list[float] = []

    def wait(delay: float) -> bool:
        waits.append(delay)
        return False

    attempt = deliver_until_settled(lambda: client.post(PAYLOAD), RETRY, name="Alertmanager", wait=wait)
    assert (attempt.outcome, attempt.reason, attempt.error) == (Outcome.RETRY, "connection", "ConnectionRefusedError")
    assert waits == [0.01]


def test_an_invalid_payload_is_refused_without_a_request(server: ScriptedServer, registry: CollectorRegistry) -> None:
    """A payload Alertmanager would refuse never leaves: refused as `invalid`, with what is wrong."""
    payload = [{"labels": {"bad-name": "x"}}]
    attempt = client_for(server.url(), registry).post(payload)
    assert (attempt.outcome, attempt.reason) == (Outcome.REJECTED, "invalid")
    assert "bad-name" in attempt.error
    assert server.requests == []


def test_no_credential_in_logs_attempts_or_metrics(caplog: pytest.LogCaptureFixture) -> None:
    """Whatever the server answers, even a body echoing the URL, no log line, attempt or metric holds the user,
    password or token; urllib3 stays at WARNING as the services configure it."""
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.WARNING, logger="urllib3")
    registry = CollectorRegistry()
    with ScriptedServer() as probe:
        echo = f"denied {secret_url(probe)} user={USER} pass={PASSWORD} token={TOKEN}"
    answers: list[Answer] = [http_answer(500, echo), "hang", b"garbage\r\n\r\n", "close", http_answer(400, echo)]
    with ScriptedServer(*answers, http_answer(401, echo), http_answer(503, echo), http_answer(404, echo)) as server:
        url = secret_url(server)
        client = client_for(url, registry, timeout=0.3)
        receiver = receiver_of(client, 1.0)
        outputs: list[object] = [client, client.endpoint]
        outputs.append(receiver.deliver(ALERT, wait=lambda _d: True))  # 500, hang, garbage, close, 400
        outputs.append(receiver.deliver(ALERT, wait=lambda _d: True))  # 401
        receiver.observe(ALERT)
        outputs.append(receiver.resend())  # 503
        outputs.append(receiver.resolve(resolved_event(), T0, wait=lambda _d: False))  # 404
    text = "\n".join(
        [*map(repr, outputs), *(r.getMessage() for r in caplog.records), generate_latest(registry).decode()]
    )
    assert "HTTP 400" in text
    assert "Alertmanager at http://127.0.0.1" in text
    for secret in (USER, PASSWORD, TOKEN):
        assert secret not in text


def resolved_event() -> AlertEvent:
    return AlertEvent(
        device_id="gpu-0003",
        temperature=70.0,
        timestamp=datetime.fromtimestamp(T0, UTC),
        gpu_model="A100",
        host_name="node-07",
        power_consume=0.0,
        gpu_util=0.0,
        temperature_threshold=90.0,
    )


def received(server: ScriptedServer) -> list[list[dict[str, Any]]]:
    return [json.loads(r.body) for r in server.requests]


def test_receiver_first_post_is_fresh_at_each_attempt(registry: CollectorRegistry) -> None:
    """A first post retried after time passed carries endsAt = that attempt's time + V, so it fires on arrival."""
    clock = Clock()
    with ScriptedServer(http_answer(500)) as server:
        receiver = receiver_of(client_for(server.url(), registry), 10.0, clock)

        def wait(delay: float) -> bool:
            clock.now += 600
            return True

        assert receiver.deliver(ALERT, wait=wait).outcome is Outcome.ACCEPTED
        ends = [batch[0]["endsAt"] for batch in received(server)]
    assert ends == [postable(ALERT, T0 + 40)["endsAt"], postable(ALERT, T0 + 640)["endsAt"]]
    assert registry.get_sample_value("gpu_alerter_alertmanager_alerts_total", {"what": "firing"}) == 1


def test_receiver_keeps_a_seen_alert_alive_and_backs_off_when_down(registry: CollectorRegistry) -> None:
    """After delivery, a sighting is re-sent an interval later with endsAt = sighting + V; a failed batch is tried
    again only after the backoff, then goes through."""
    clock = Clock()
    with ScriptedServer(http_answer(200), http_answer(502)) as server:
        receiver = receiver_of(client_for(server.url(), registry), 10.0, clock)
        receiver.deliver(ALERT, wait=lambda _d: True)
        assert receiver.next_resend_in() is None
        clock.now += 3
        receiver.observe(ALERT)
        assert receiver.next_resend_in() == 7
        assert receiver.resend() is None
        clock.now += 7
        assert receiver.next_resend_in() == 0
        failed = receiver.resend()
        assert failed is not None
        assert failed.reason == "server_error"
        assert receiver.next_resend_in() == pytest.approx(0.01)
        assert receiver.resend() is None  # backing off
        clock.now += 0.01
        resent = receiver.resend()
        assert resent is not None
        assert resent.outcome is Outcome.ACCEPTED
        assert receiver.next_resend_in() is None
        batches = received(server)
    assert len(batches) == 3
    assert batches[2] == [postable(ALERT, T0 + 3 + 40)]
    assert registry.get_sample_value("gpu_alerter_alertmanager_alerts_total", {"what": "resent"}) == 1
    assert registry.get_sample_value("gpu_alerter_alertmanager_alerts_kept_alive") == 1


def test_receiver_resolution_posts_endsat_for_the_devices_alerts(
    server: ScriptedServer, registry: CollectorRegistry
) -> None:
    """A resolved notice posts the critical, warning and forecast alerts of the device with endsAt = now, once."""
    clock = Clock()
    receiver = receiver_of(client_for(server.url(), registry), 10.0, clock)
    receiver.deliver(ALERT, wait=lambda _d: True)
    clock.now += 5
    attempt = receiver.resolve(resolved_event(), at=T0 + 60, wait=lambda _d: True)
    assert attempt.outcome is Outcome.ACCEPTED
    batch = received(server)[1]
    assert sorted(a["labels"]["alertname"] for a in batch) == [
        "GpuTemperatureCritical",
        "GpuTemperatureForecast",
        "GpuTemperatureWarning",
    ]
    critical = next(a for a in batch if a["labels"]["alertname"] == "GpuTemperatureCritical")
    assert (critical["startsAt"], critical["endsAt"]) == (
        postable(ALERT, T0)["startsAt"],
        postable(ALERT, T0 + 5)["endsAt"],
    )
    assert critical["annotations"]["summary"] == "GPU gpu-0003 on node-07 is back to 70.00°C"
    assert receiver.book == {}


def test_receiver_logs_a_refusal_once_a_minute_and_counts_each(caplog: pytest.LogCaptureFixture) -> None:
    """Alertmanager refusing (400) is one error line naming the cause; repeats within a minute are only counted."""
    registry = CollectorRegistry()
    with ScriptedServer(http_answer(400, '"invalid label set"'), http_answer(400, '"invalid label set"')) as server:
        receiver = receiver_of(client_for(server.url(), registry), 10.0)
        with caplog.at_level(logging.ERROR, logger="alerter.alertmanager"):
            receiver.deliver(ALERT, wait=lambda _d: True)
            receiver.deliver(ALERT, wait=lambda _d: True)
    [line] = [r.getMessage() for r in caplog.records]
    assert line == (
        f'Alertmanager at {server.url()}/api/v2/alerts refused 1 alert(s) (HTTP 400 "invalid label set"): '
        "a bug in the alerter; they are dropped"
    )
    assert posts(registry, "invalid") == 2
    assert receiver.book == {}


def test_a_huge_error_answer_is_read_only_in_part(registry: CollectorRegistry) -> None:
    """A 500 with megabytes of body costs at most a few kilobytes: the attempt keeps a short, printable excerpt."""
    with ScriptedServer(http_answer(500, "\x1b[31m" + "e" * 5_000_000)) as server:
        attempt = client_for(server.url(), registry).post(PAYLOAD)
    assert (attempt.reason, attempt.status) == ("server_error", 500)
    assert attempt.body == " [31m" + "e" * 195


def test_a_secret_cut_by_the_excerpt_is_still_starred(registry: CollectorRegistry) -> None:
    """A credential straddling the excerpt's end is redacted before the cut, so no prefix of it leaks."""
    with ScriptedServer() as probe:
        url = secret_url(probe)
    with ScriptedServer(http_answer(502, "x" * 190 + TOKEN)) as server:
        attempt = client_for(url.replace(str(probe.port), str(server.port)), registry).post(PAYLOAD)
    assert attempt.body == "x" * 190 + "***"
    assert TOKEN[:5] not in attempt.describe()


def test_as_a_receiver_one_post_is_one_attempt_at_a_critical_alert_from_the_event_time(
    server: ScriptedServer, registry: CollectorRegistry
) -> None:
    """`post(notification)` is one POST of the alert as GpuTemperatureCritical starting at the policy's event time
    (a 500 is returned for the notifier to retry, not retried here); a sighting of the device keeps it alive."""
    clock = Clock()
    receiver = receiver_of(client_for(server.url(), registry), 10.0, clock)
    event = resolved_event()
    notification = Notification(7, NotificationKind.ALERT, event, 0, 12, T0 - 30)
    server.script = [http_answer(500, "boom")]
    assert receiver.post(notification).outcome is Outcome.RETRY
    assert receiver.post(notification).outcome is Outcome.ACCEPTED
    first, second = received(server)
    assert first == second
    [alert] = second
    assert alert["labels"] == {
        "alertname": "GpuTemperatureCritical",
        "severity": "critical",
        "device_id": "gpu-0003",
        "host_name": "node-07",
        "gpu_model": "A100",
    }
    assert alert["startsAt"] == rfc3339(T0 - 30)
    clock.now += 3
    receiver.sighted(Sighting(event, T0 - 25))
    assert receiver.next_resend_in() == 7
