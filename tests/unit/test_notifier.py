"""The notifier thread with a scripted receiver: order, retries, refusals, failures, cancellation and stop."""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Iterator

import pytest

from alerter.domain.budget import AlertBudget
from alerter.domain.notification import Kind, Notification, Result, Status
from alerter.metrics import AlerterMetrics
from alerter.notifier import Fanout, Notifier
from alerter.receiver import Attempt, HeldBack, Outcome, Retry, Sighting
from tests.alerter_support import make_alert
from tests.support import wait_until

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


# -- refusals, the alert budget, several receivers, keep-alive -------------------------------------------------------


def test_refusals_are_logged_once_per_interval_and_make_it_unready_until_accepted(
    stop_after: list[Notifier], caplog: pytest.LogCaptureFixture
) -> None:
    """Fifty refused alerts give fifty REJECTED results but one "refused" line (then a count), and from the third
    refusal in a row the notifier is not accepting (the instance not ready); one acceptance makes it ready again."""
    receiver = ScriptedReceiver(*[NOT_FOUND] * 50)
    running = start(receiver, stop_after)
    with caplog.at_level(logging.INFO, logger="alerter.notifier"):
        for n in range(50):
            running.notifier.submit(notification(n))
        assert all(running.next()[1] is Status.REJECTED for _ in range(50))
        assert not running.notifier.accepting()
        assert running.metric("gpu_alerter_receiver_refusing", receiver="slack") == 1
        running.notifier.submit(notification(50))
        assert running.next() == (50, Status.DELIVERED, "")
    assert running.notifier.accepting()
    assert running.metric("gpu_alerter_receiver_refusing", receiver="slack") == 0
    lines = [r.getMessage() for r in caplog.records]
    assert len([line for line in lines if "refused the alert" in line]) == 1
    assert [line for line in lines if "in a row" in line] == [
        "Slack refused 3 alerts in a row: not ready until it accepts one again "
        "(check SLACK_WEBHOOK_URL and SLACK_CHANNEL)"
    ]
    assert "Slack accepts alerts again; ready" in lines
    assert running.metric("gpu_alerter_alerts_failed_total", reason="rejected") == 50


class SummarisingReceiver(ScriptedReceiver):
    """Also posts summaries of held-back alerts, answered from `summary_script` (then ACCEPTED)."""

    def __init__(self, *script: Attempt | Exception) -> None:
        super().__init__(*script)
        self.summaries: list[HeldBack] = []
        self.summary_script: list[Attempt] = []

    def post_summary(self, held: HeldBack) -> Attempt:
        self.summaries.append(held)
        return self.summary_script.pop(0) if self.summary_script else ACCEPTED


def budgeted(receiver: SummarisingReceiver, started: list[Notifier], per_window: int, window: float) -> Running:
    running = Running.__new__(Running)
    running.results = queue.SimpleQueue()
    running.metrics = AlerterMetrics()
    running.notifier = Notifier(
        receiver, running.results, running.metrics, Retry(0.001, 0.001, lambda: 1.0),
        budget=AlertBudget(per_window, window),
    )
    running.notifier.start()
    started.append(running.notifier)
    return running


def test_alerts_over_the_budget_go_out_as_one_summary(stop_after: list[Notifier]) -> None:
    """With a budget of 3 a window, 3 of 10 alerts are posted one by one and the other 7 held back; at the window's
    end one summary names them, and once it is accepted each of the 7 is DELIVERED (counted as sent and held back)."""
    receiver = SummarisingReceiver()
    running = budgeted(receiver, stop_after, per_window=3, window=0.5)
    for n in range(10):
        running.notifier.submit(notification(n))
    results = sorted(running.next() for _ in range(10))
    assert results == [(n, Status.DELIVERED, "") for n in range(10)]
    assert receiver.posted == [0, 1, 2]
    [summary] = receiver.summaries
    assert [a.device_id for a in summary.alerts] == [f"gpu-{n}" for n in range(3, 10)]
    assert summary.budget == 3
    assert running.metric("gpu_alerter_alerts_held_back_total") == 7
    assert running.metric("gpu_alerter_alert_summaries_total", result="accepted") == 1
    assert running.metric("gpu_alerter_alerts_sent_total") == 10


def test_a_refused_summary_refuses_the_alerts_it_held_and_cancel_takes_held_ones_back(
    stop_after: list[Notifier],
) -> None:
    """Held-back alerts count as delivered only if the summary is accepted: refused, each is REJECTED with the
    refusal's reason; a held-back alert cancelled before the summary comes back ABANDONED and is left out of it."""
    receiver = SummarisingReceiver()
    receiver.summary_script = [NOT_FOUND]
    running = budgeted(receiver, stop_after, per_window=1, window=0.5)
    for n in range(4):
        running.notifier.submit(notification(n))
    assert running.notifier.cancel([2]) is None
    results = {running.next() for _ in range(4)}
    assert results == {
        (0, Status.DELIVERED, ""),
        (1, Status.REJECTED, "slack rejected the alert: HTTP 404 no_service"),
        (2, Status.ABANDONED, ""),
        (3, Status.REJECTED, "slack rejected the alert: HTTP 404 no_service"),
    }
    assert [[a.device_id for a in s.alerts] for s in receiver.summaries] == [["gpu-1", "gpu-3"]]
    assert running.metric("gpu_alerter_alert_summaries_total", result="rejected") == 1


def test_a_receiver_without_summaries_cannot_have_a_budget() -> None:
    """Only a receiver that can post a summary can hold alerts back."""
    with pytest.raises(TypeError, match="cannot post summaries"):
        Notifier(ScriptedReceiver(), queue.SimpleQueue(), AlerterMetrics(), Retry(1, 1), budget=AlertBudget(1))


class Named(ScriptedReceiver):
    def __init__(self, name: str, *script: Attempt | Exception) -> None:
        super().__init__(*script)
        self.name = name


def fanout(started: list[Notifier], *receivers: ScriptedReceiver) -> tuple[Fanout, queue.SimpleQueue[Result]]:
    results: queue.SimpleQueue[Result] = queue.SimpleQueue()
    out = Fanout(results, AlerterMetrics())
    for receiver in receivers:
        started.append(out.add(receiver, Retry(0.001, 0.001, lambda: 1.0)))
    out.start()
    return out, results


def combined(results: queue.SimpleQueue[Result]) -> tuple[int, Status, str]:
    result = results.get(timeout=10)
    return result.notification.id, result.status, result.reason


def test_every_receiver_gets_each_alert_and_one_result_combines_them(stop_after: list[Notifier]) -> None:
    """Two receivers: DELIVERED when both accept; DELIVERED with the refusal's reason when one refuses (it does not
    hold the other back); REJECTED when both refuse; ABANDONED when one gave up unsent."""
    slack, am = Named("Slack"), Named("Alertmanager", ACCEPTED, NOT_FOUND, NOT_FOUND, SERVER_ERROR)
    slack.script = [ACCEPTED, ACCEPTED, NOT_FOUND, ACCEPTED]
    out, results = fanout(stop_after, slack, am)
    for n in range(3):
        out.submit(notification(n))
    assert [combined(results) for _ in range(3)] == [
        (0, Status.DELIVERED, ""),
        (1, Status.DELIVERED, "alertmanager rejected the alert: HTTP 404 no_service"),
        (2, Status.REJECTED, "slack rejected the alert: HTTP 404 no_service; alertmanager rejected the alert: HTTP "
         "404 no_service"),
    ]
    am.gate = threading.Event()
    am.entered.clear()
    out.submit(notification(3))
    assert am.entered.wait(10)
    out.cancel([3])
    am.gate.set()
    assert combined(results) == (3, Status.ABANDONED, "")
    assert slack.posted[:3] == [0, 1, 2]
    assert am.posted == [0, 1, 2, 3]


def test_a_receiver_that_is_down_does_not_hold_back_the_others(stop_after: list[Notifier]) -> None:
    """While Alertmanager fails (retried every hour), Slack goes on posting the next alerts at once; each result
    waits for both."""
    slack, am = Named("Slack"), Named("Alertmanager", SERVER_ERROR)
    results: queue.SimpleQueue[Result] = queue.SimpleQueue()
    out = Fanout(results, AlerterMetrics())
    stop_after.append(out.add(slack, Retry(0.001, 0.001, lambda: 1.0)))
    stop_after.append(out.add(am, Retry(3600, 3600, lambda: 1.0)))
    out.start()
    for n in range(3):
        out.submit(notification(n))
    wait_until(lambda: slack.posted == [0, 1, 2], 10, "Slack to post all three")
    assert results.empty(), "each result waits for Alertmanager"
    out.cancel([0, 1, 2])
    assert sorted(combined(results) for _ in range(3)) == [(n, Status.ABANDONED, "") for n in range(3)]


class KeepingAlive(ScriptedReceiver):
    """Records sightings and answers re-sends once they are due."""

    def __init__(self) -> None:
        super().__init__()
        self.name = "Alertmanager"
        self.sightings: list[Sighting] = []
        self.resent = threading.Event()

    def sighted(self, sighting: Sighting) -> None:
        self.sightings.append(sighting)
        self.due = time.monotonic() + 0.05

    def next_resend_in(self) -> float | None:
        return None if not self.sightings or self.resent.is_set() else self.due - time.monotonic()

    def resend(self) -> Attempt | None:
        self.resent.set()
        return ACCEPTED


def test_sightings_reach_a_keep_alive_receiver_which_resends_when_due(stop_after: list[Notifier]) -> None:
    """Sightings are passed on to a receiver that keeps alerts alive, and its re-send is called once it falls due;
    a receiver without re-sends is not bothered with sightings."""
    keeper = KeepingAlive()
    out, _ = fanout(stop_after, Named("Slack"), keeper)
    assert out.observing
    sighting = Sighting(make_alert(), 1.0)
    out.observe([sighting])
    assert keeper.resent.wait(10)
    assert keeper.sightings == [sighting]
    assert not fanout([], Named("Slack"))[0].observing
