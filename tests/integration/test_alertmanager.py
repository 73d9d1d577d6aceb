"""The Alertmanager receiver against the real Alertmanager 0.25 (Debian's prometheus-alertmanager): alerts appear
with our labels, notify its webhook, stay firing while re-sent, lapse when not, and resolve when told."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from alerter.alertmanager import (
    AlertmanagerClient,
    AlertmanagerMetrics,
    AlertmanagerReceiver,
    GpuAlert,
    Kind,
    ResendPolicy,
    check_postable,
    postable,
)
from alerter.receiver import Outcome, Retry
from alerter.settings import Endpoint
from shared.models import AlertEvent
from tests.alertmanager_support import (
    AlertmanagerProcess,
    Routing,
    WebhookSink,
    alertmanager_binary,
    running_alertmanager,
)
from tests.support import wait_until

pytestmark = pytest.mark.integration

INTERVAL = 1.0  # re-send interval: V = 4 s, four times the fixture's resolve_timeout (1 s); a 3 s stall is survived


@pytest.fixture
def alertmanager(tmp_path: Path) -> Iterator[tuple[AlertmanagerProcess, WebhookSink]]:
    """A real Alertmanager routing every alert to a real local webhook, grouped by alertname and device."""
    with running_alertmanager(tmp_path / "alertmanager") as pair:
        yield pair


def receiver_for(url: str, interval: float = INTERVAL) -> AlertmanagerReceiver:
    client = AlertmanagerClient(Endpoint.parse(url), timeout=5.0, metrics=AlertmanagerMetrics())
    return AlertmanagerReceiver(client, ResendPolicy(interval), Retry(initial=0.2, maximum=0.2))


def event(device: str = "gpu-0003", temperature: float = 95.5, at: float | None = None) -> AlertEvent:
    return AlertEvent(
        device_id=device,
        temperature=temperature,
        timestamp=datetime.fromtimestamp(time.time() if at is None else at, UTC),
        gpu_model="NVIDIA A100-SXM4-80GB",
        host_name="node-07",
        power_consume=310.0,
        gpu_util=97.0,
        temperature_threshold=90.0,
    )


def tick(receiver: AlertmanagerReceiver) -> int:
    """What the notifier does on each turn of its loop: re-send what is due; returns how many batches (0 or 1)."""
    wait = receiver.next_resend_in()
    if wait is None or wait > 0:
        return 0
    attempt = receiver.resend()
    assert attempt is not None
    assert attempt.outcome is Outcome.ACCEPTED
    return 1


def keep(receiver: AlertmanagerReceiver, alert: GpuAlert, until: float) -> int:
    """The notifier's loop while the GPU stays hot: a sighting every 50 ms, re-sends when due; returns how many."""
    resent = 0
    while time.time() < until:
        receiver.observe(alert)
        resent += tick(receiver)
        time.sleep(0.05)
    return resent


def same_time(shown: str, epoch: float) -> bool:
    """Alertmanager shows times to the millisecond."""
    return abs(datetime.fromisoformat(shown).timestamp() - epoch) < 0.001


def accept_all(_delay: float) -> bool:
    time.sleep(_delay)
    return True


def test_an_alert_appears_with_its_labels_and_is_notified(
    alertmanager: tuple[AlertmanagerProcess, WebhookSink],
) -> None:
    """A delivered critical alert is listed by GET /api/v2/alerts as active, with our labels, annotations and the
    reading's event time as startsAt, and Alertmanager notifies its webhook of it."""
    am, webhook = alertmanager
    reading = event(at=time.time() - 2.5)
    alert = GpuAlert.from_event(reading, Kind.CRITICAL)
    assert receiver_for(am.url).deliver(alert, wait=accept_all).outcome is Outcome.ACCEPTED

    [shown] = wait_until(lambda: am.alerts(device_id="gpu-0003"), 10, "the alert in GET /api/v2/alerts")
    assert shown["labels"] == {
        "alertname": "GpuTemperatureCritical",
        "severity": "critical",
        "device_id": "gpu-0003",
        "host_name": "node-07",
        "gpu_model": "NVIDIA A100-SXM4-80GB",
    }
    assert shown["annotations"] == {
        "summary": "GPU gpu-0003 on node-07 at 95.50°C, above 90.00°C",
        "description": "Temperature of 95.50°C detected on GPU gpu-0003 on node-07 (NVIDIA A100-SXM4-80GB), "
        "exceeding threshold of 90.00°C.",
    }
    assert same_time(shown["startsAt"], reading.timestamp.timestamp())
    assert shown["status"]["state"] == "active"
    assert shown["receivers"] == [{"name": "test-webhook"}]

    notified = webhook.wait_for("firing", alertname="GpuTemperatureCritical", device_id="gpu-0003")
    assert notified["labels"] == shown["labels"]
    assert notified["annotations"] == shown["annotations"]


def test_re_sends_keep_it_firing_past_validity_and_resolve_timeout_then_it_lapses(
    alertmanager: tuple[AlertmanagerProcess, WebhookSink],
) -> None:
    """Kept seen 3 s past its first endsAt (V = 4 intervals = 4 s; resolve_timeout 1 s), the alert stays active
    with one firing notification; once no longer seen, Alertmanager resolves it at the last sighting + V and
    notifies that."""
    am, webhook = alertmanager
    receiver = receiver_for(am.url)
    alert = GpuAlert.from_event(event(), Kind.CRITICAL)
    delivered = time.time()
    assert receiver.deliver(alert, wait=accept_all).outcome is Outcome.ACCEPTED
    first_ends = delivered + 4 * INTERVAL

    resent = keep(receiver, alert, until=first_ends + 3.0)
    [shown] = am.alerts(device_id="gpu-0003")
    still_active_at = time.time()
    assert shown["status"]["state"] == "active"
    assert resent >= 5
    last_sighting = receiver.book[alert.key].seen_at

    def resolved_while_ticking() -> list[dict[str, Any]]:
        tick(receiver)  # the GPU cooled: no more sightings, but the notifier goes on
        return webhook.alerts("resolved")

    [resolved] = wait_until(resolved_while_ticking, 20, "the resolved notification")
    assert resolved["labels"]["device_id"] == "gpu-0003"
    assert same_time(resolved["endsAt"], last_sighting + 4 * INTERVAL)
    assert datetime.fromisoformat(resolved["endsAt"]).timestamp() > still_active_at
    assert len(webhook.alerts("firing")) == 1  # never lapsed and fired again while kept alive
    assert am.alerts(device_id="gpu-0003") == []


def test_a_resolved_notice_resolves_it_at_once(alertmanager: tuple[AlertmanagerProcess, WebhookSink]) -> None:
    """A resolved notice posts endsAt = now: the webhook gets a `resolved` notification and the alert leaves the
    active list; the warning and forecast alerts it also ends, never fired, notify nothing."""
    am, webhook = alertmanager
    receiver = receiver_for(am.url, interval=60.0)  # no lapse during the test: only the notice can resolve it
    alert = GpuAlert.from_event(event(), Kind.CRITICAL)
    receiver.deliver(alert, wait=accept_all)
    webhook.wait_for("firing", device_id="gpu-0003")

    before = time.time()
    cool = event(temperature=71.25)
    assert receiver.resolve(cool, at=cool.timestamp.timestamp(), wait=accept_all).outcome is Outcome.ACCEPTED
    resolved = webhook.wait_for("resolved", device_id="gpu-0003")
    assert resolved["labels"]["alertname"] == "GpuTemperatureCritical"
    assert resolved["annotations"]["summary"] == "GPU gpu-0003 on node-07 is back to 71.25°C"
    assert before - 1 <= datetime.fromisoformat(resolved["endsAt"]).timestamp() <= time.time()
    assert am.alerts(device_id="gpu-0003") == []

    receiver.deliver(GpuAlert.from_event(event(device="sentinel"), Kind.CRITICAL), wait=accept_all)
    webhook.wait_for("firing", device_id="sentinel")
    assert {a["labels"]["alertname"] for a in webhook.alerts() if a["labels"]["device_id"] == "gpu-0003"} == {
        "GpuTemperatureCritical"
    }


def test_an_alert_from_a_backlog_still_fires(alertmanager: tuple[AlertmanagerProcess, WebhookSink]) -> None:
    """An alert raised from an hour-old reading (a backlog after an outage) fires, with the old startsAt."""
    am, webhook = alertmanager
    old = event(at=time.time() - 3600)
    receiver_for(am.url).deliver(GpuAlert.from_event(old, Kind.CRITICAL), wait=accept_all)
    notified = webhook.wait_for("firing", device_id="gpu-0003")
    assert same_time(notified["startsAt"], old.timestamp.timestamp())


def test_an_alert_posted_while_alertmanager_is_down_arrives_once_it_is_up(tmp_path: Path) -> None:
    """Delivery retries a refused connection until Alertmanager is up, then the alert is accepted and notified."""
    with WebhookSink() as webhook:
        am = AlertmanagerProcess(tmp_path / "am", webhook.url)
        alertmanager_binary()
        receiver = receiver_for(am.url)
        failures: list[str] = []

        def start_on_first_failure(delay: float) -> bool:
            if len(failures) == 1:
                am.start()
            time.sleep(delay)
            return len(failures) < 100

        try:
            attempt = receiver.deliver(
                GpuAlert.from_event(event(), Kind.CRITICAL),
                wait=start_on_first_failure,
                on_retry=lambda failed, _delay: failures.append(failed.reason),
            )
            assert attempt.outcome is Outcome.ACCEPTED
            assert failures[0] == "connection"
            webhook.wait_for("firing", device_id="gpu-0003")
        finally:
            am.stop()


def test_grouped_by_device_a_gpus_alerts_share_one_group(tmp_path: Path) -> None:
    """Routed with group_by [host_name, device_id], a GPU's critical and warning alerts form one group and another
    GPU its own, because every kind carries the same device labels."""
    with running_alertmanager(tmp_path / "am", Routing(group_by=("host_name", "device_id"))) as (am, _webhook):
        receiver = receiver_for(am.url)
        for device, kind in (("gpu-1", Kind.CRITICAL), ("gpu-1", Kind.WARNING), ("gpu-2", Kind.CRITICAL)):
            receiver.deliver(GpuAlert.from_event(event(device=device), kind), wait=accept_all)
        groups: list[dict[str, Any]] = wait_until(
            lambda: (found := am.groups()) and sum(len(g["alerts"]) for g in found) == 3 and found,
            10,
            "three alerts in their groups",
        )
    by_device = {g["labels"]["device_id"]: sorted(a["labels"]["alertname"] for a in g["alerts"]) for g in groups}
    assert by_device == {
        "gpu-1": ["GpuTemperatureCritical", "GpuTemperatureWarning"],
        "gpu-2": ["GpuTemperatureCritical"],
    }
    assert all(g["labels"] == {"host_name": "node-07", "device_id": g["labels"]["device_id"]} for g in groups)


HOSTILE_DEVICES = ['gpu"0\\1', "gpu-🔥-ü", "line\nbreak", "{{ .Labels }}", "lone-\ud800-surrogate", "x" * 256]


def test_hostile_label_values_round_trip(alertmanager: tuple[AlertmanagerProcess, WebhookSink]) -> None:
    """Device ids with quotes, emoji, newlines, template syntax or 256 characters reach Alertmanager unchanged; a
    lone surrogate (not UTF-8) arrives as `?` instead of the post being refused."""
    am, _ = alertmanager
    receiver = receiver_for(am.url)
    for device in HOSTILE_DEVICES:
        attempt = receiver.deliver(
            replace(GpuAlert.from_event(event(), Kind.CRITICAL), device_id=device), wait=accept_all
        )
        assert attempt.outcome is Outcome.ACCEPTED, device
    shown = {a["labels"]["device_id"] for a in am.alerts()}
    expected = {d.encode("utf-8", "replace").decode() for d in HOSTILE_DEVICES}
    assert expected <= shown
    assert "lone-?-surrogate" in shown


DAY_1, DAY_2 = "2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z"
BAD_PAYLOADS: list[dict[str, Any]] = [
    {"labels": {"alert-name": "x"}, "startsAt": DAY_1, "endsAt": DAY_2},
    {"labels": {"a": ""}, "startsAt": DAY_1, "endsAt": DAY_2},
    {"labels": {"a": "x"}, "startsAt": DAY_2, "endsAt": DAY_1},
    {"labels": {"a": "x"}, "annotations": {"no good": "x"}, "startsAt": DAY_1, "endsAt": DAY_2},
    {"labels": {"a": "x"}, "startsAt": "yesterday", "endsAt": DAY_2},
]


@pytest.mark.parametrize("payload", BAD_PAYLOADS)
def test_what_our_check_refuses_alertmanager_refuses(
    alertmanager: tuple[AlertmanagerProcess, WebhookSink], payload: dict[str, Any]
) -> None:
    """Each payload the local check refuses, the real Alertmanager refuses too (400 or 422)."""
    am, _ = alertmanager
    with pytest.raises(ValueError):  # noqa: PT011 - InvalidAlert is a ValueError; the kind of fault varies
        check_postable(payload)
    assert am.post_raw([payload]).status_code in (400, 422)


def test_every_kind_and_resolution_is_accepted(alertmanager: tuple[AlertmanagerProcess, WebhookSink]) -> None:
    """A firing and a resolved payload of every kind, as built, are accepted by the real Alertmanager."""
    am, _ = alertmanager
    now = time.time()
    for kind in Kind:
        alert = GpuAlert.from_event(event(device=f"gpu-{kind.value}"), kind, detail="Expected in about 4 min.")
        for payload in (postable(alert, now + 60), postable(alert, now, resolved=True)):
            response = am.post_raw([payload])
            assert response.status_code == 200, (payload, response.text)
