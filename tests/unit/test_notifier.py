"""The notifier thread with a scripted receiver: order, retries, refusals, failures, cancellation and stop."""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator

import pytest

from alerter.domain.notification import Kind, Notification, Result, Status
from alerter.metrics import AlerterMetrics
from alerter.notifier import Notifier
from alerter.receiver import Attempt, Outcome, Retry
from tests.alerter_support import make_alert

ACCEPTED = Attempt(Outcome.ACCEPTED, "accepted", 200)
SERVER_ERROR = Attempt(Outcome.RETRY, "server_error", 500, "internal_error")
NOT_FOUND = Attempt(Outcome.REJECTED, "rejected", 404, "no_service")


class ScriptedReceiver:
    """Answers each post with the next scripted attempt (then ACCEPTED); `gate` (if set) must open for each post."""

    name = "Slack"
    hint = "check SLACK_WEBHOOK_URL and SLACK_CHANNEL"

    def __init__(self, *script: Attempt | Exception) -> None:
        self.script = list(script)
        self.posted: list[int] = []
        self.gate: threading.Event | None = None
        self.entered = threading.Event()

    def post(self, notification: Notification) -> Attempt:
        self.posted.append(notification.id)
        self.entered.set()
        if self.gate is not None:
            assert self.gate.wait(10), "the test never opened the gate"
        answer = self.script.pop(0) if self.script else ACCEPTED
        if isinstance(answer, Exception):
            raise answer
        return answer


def notification(number: int) -> Notification:
    return Notification(number, Kind.ALERT, make_alert(device_id=f"gpu-{number}"), 0, number, 0.0)


class Running:
    def __init__(self, receiver: ScriptedReceiver, retry_wait: float = 0.001) -> None:
        self.results: queue.SimpleQueue[Result] = queue.SimpleQueue()
        self.metrics = AlerterMetrics()
        self.notifier = Notifier(receiver, self.results, self.metrics, Retry(retry_wait, retry_wait, lambda: 1.0))
        self.notifier.start()

    def metric(self, name: str, **labels: str) -> float | None:
        return self.metrics.registry.get_sample_value(name, labels)

    def next(self) -> tuple[int, Status, str]:
        result = self.results.get(timeout=10)
        return result.notification.id, result.status, result.reason


@pytest.fixture
def stop_after() -> Iterator[list[Notifier]]:
    started: list[Notifier] = []
    yield started
    for notifier in started:
        notifier.stop(5)


def start(receiver: ScriptedReceiver, started: list[Notifier], retry_wait: float = 0.001) -> Running:
    running = Running(receiver, retry_wait)
    started.append(running.notifier)
    return running


def test_notifications_are_posted_in_order_each_with_one_result(stop_after: list[Notifier]) -> None:
    """Three notifications are posted in the order handed over and each gets exactly one DELIVERED result."""
    receiver = ScriptedReceiver()
    running = start(receiver, stop_after)
    for n in range(3):
        running.notifier.submit(notification(n))
    assert [running.next() for _ in range(3)] == [(n, Status.DELIVERED, "") for n in range(3)]
    assert receiver.posted == [0, 1, 2]
    assert running.metric("gpu_alerter_alerts_sent_total") == 3


def test_retryable_failures_are_retried_and_counted(stop_after: list[Notifier]) -> None:
    """Two 500s then acceptance: one DELIVERED result after three posts, two retries counted as server_error."""
    receiver = ScriptedReceiver(SERVER_ERROR, SERVER_ERROR)
    running = start(receiver, stop_after)
    running.notifier.submit(notification(7))
    assert running.next() == (7, Status.DELIVERED, "")
    assert receiver.posted == [7, 7, 7]
    assert running.metric("gpu_alerter_alert_send_retries_total", reason="server_error") == 2


def test_a_refusal_is_rejected_with_the_receivers_reason(stop_after: list[Notifier]) -> None:
    """A 404 is not retried: REJECTED, with a reason naming the receiver and its answer, counted as rejected."""
    running = start(ScriptedReceiver(NOT_FOUND), stop_after)
    running.notifier.submit(notification(1))
    assert running.next() == (1, Status.REJECTED, "slack rejected the alert: HTTP 404 no_service")
    assert running.metric("gpu_alerter_alerts_failed_total", reason="rejected") == 1


def test_an_error_inside_the_receiver_fails_that_notification_only(stop_after: list[Notifier]) -> None:
    """A receiver that raises makes that notification FAILED; the thread lives on and delivers the next."""
    running = start(ScriptedReceiver(RuntimeError("boom")), stop_after)
    running.notifier.submit(notification(1))
    running.notifier.submit(notification(2))
    assert [running.next(), running.next()] == [(1, Status.FAILED, ""), (2, Status.DELIVERED, "")]
    assert running.notifier.alive()


def test_cancel_names_the_post_under_way_and_skips_the_queued_ones(stop_after: list[Notifier]) -> None:
    """Cancelling while a post is under way returns its id (its result still comes, as the receiver answered);
    cancelled notifications still queued are never posted and come back ABANDONED."""
    receiver = ScriptedReceiver()
    receiver.gate = threading.Event()
    running = start(receiver, stop_after)
    for n in (1, 2, 3):
        running.notifier.submit(notification(n))
    assert receiver.entered.wait(10)
    assert running.notifier.cancel([1, 2]) == 1
    receiver.gate.set()
    assert [running.next() for _ in range(3)] == [
        (1, Status.DELIVERED, ""),
        (2, Status.ABANDONED, ""),
        (3, Status.DELIVERED, ""),
    ]
    assert receiver.posted == [1, 3]


def test_cancel_ends_a_retry_wait(stop_after: list[Notifier]) -> None:
    """A notification waiting to be retried (here for an hour) is given up at once when cancelled: ABANDONED."""
    receiver = ScriptedReceiver(SERVER_ERROR)
    running = start(receiver, stop_after, retry_wait=3600)
    running.notifier.submit(notification(5))
    assert receiver.entered.wait(10)
    running.notifier.cancel([5])
    assert running.next() == (5, Status.ABANDONED, "")


def test_stop_abandons_what_was_not_posted(stop_after: list[Notifier]) -> None:
    """Stopping while a notification waits an hour for its retry ends that wait and abandons it and the next."""
    receiver = ScriptedReceiver(SERVER_ERROR)
    running = start(receiver, stop_after, retry_wait=3600)
    running.notifier.submit(notification(1))
    running.notifier.submit(notification(2))
    assert receiver.entered.wait(10)
    running.notifier.stop(5)
    assert not running.notifier.alive()
    assert [running.next(), running.next()] == [(1, Status.ABANDONED, ""), (2, Status.ABANDONED, "")]
