"""Every notification kind through the Alertmanager receiver, against a real local server: each kind is its own
alert (alertname, severity, a detail in the description), a resolved notice posts endsAt for exactly the alerts
it ends, and a warning kept quiet by its cooldown keeps the warning alive."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from typing import Any

from prometheus_client import CollectorRegistry

from alerter.alertmanager import AlertmanagerClient, AlertmanagerMetrics, AlertmanagerReceiver, ResendPolicy, rfc3339
from alerter.domain.notification import TEMPERATURE_KINDS, Backlog, Kind, Notification, Outlook, Resolution, Silence
from alerter.receiver import Outcome, Retry, Sighting
from alerter.settings import Endpoint
from shared.models import AlertEvent
from tests.alertmanager_support import ScriptedServer, http_answer

T0 = 1_800_000_000.0


def event(temperature: float = 95.0, threshold: float = 90.0) -> AlertEvent:
    return AlertEvent(
        device_id="gpu-0003",
        temperature=temperature,
        timestamp=datetime.fromtimestamp(T0, UTC),
        gpu_model="A100",
        host_name="node-07",
        power_consume=300.0,
        gpu_util=90.0,
        temperature_threshold=threshold,
    )


def receiver(server: ScriptedServer) -> AlertmanagerReceiver:
    client = AlertmanagerClient(
        Endpoint.parse(server.url()), timeout=2.0, metrics=AlertmanagerMetrics(CollectorRegistry())
    )
    return AlertmanagerReceiver(client, ResendPolicy(10.0), Retry(0.01, 0.05), clock=lambda: T0 + 5)


def posted(server: ScriptedServer) -> list[list[dict[str, Any]]]:
    return [json.loads(r.body) for r in server.requests]


def test_each_kind_is_its_own_alert_with_its_detail() -> None:
    """Critical, warning, forecast and silent notifications post GpuTemperatureCritical/Warning/Forecast and
    GpuSilent, with the forecast's time to go and the silence's length in the description."""
    notifications = [
        Notification(1, Kind.CRITICAL, event(), 0, 0, T0),
        Notification(2, Kind.WARNING, event(85.0, 80.0), 0, 1, T0),
        Notification(3, Kind.FORECAST, event(70.0), 0, 2, T0, Outlook(90.0, 240.0, 2.1, 70.0)),
        Notification(4, Kind.SILENT, event(70.0), 0, 3, T0, Silence(T0 - 120, 120.0)),
        Notification(5, Kind.CRITICAL, event(120.0), 0, 4, T0, Backlog(T0 - 3600, T0, 120.0, 300)),
    ]
    with ScriptedServer(*[http_answer(200)] * 5) as server:
        am = receiver(server)
        assert [am.post(n).outcome for n in notifications] == [Outcome.ACCEPTED] * 5
        batches = posted(server)
    labels = [(b[0]["labels"]["alertname"], b[0]["labels"]["severity"]) for b in batches]
    assert labels == [
        ("GpuTemperatureCritical", "critical"),
        ("GpuTemperatureWarning", "warning"),
        ("GpuTemperatureForecast", "warning"),
        ("GpuSilent", "critical"),
        ("GpuTemperatureCritical", "critical"),
    ]
    assert "Expected to reach 90.0°C in about 240s (+2.1°C/min)." in batches[2][0]["annotations"]["description"]
    assert "No readings for 120s." in batches[3][0]["annotations"]["description"]
    assert "300 readings above the threshold" in batches[4][0]["annotations"]["description"]


def test_a_resolved_notice_ends_exactly_the_alerts_it_names() -> None:
    """A temperature resolution posts endsAt (its event time) for the critical, warning and forecast alerts of the
    device; a device that reports again ends its GpuSilent alert only."""
    cool = Notification(1, Kind.RESOLVED, event(60.0, 85.0), 0, 0, T0, Resolution(TEMPERATURE_KINDS, T0 - 60, 85.0))
    back = Notification(2, Kind.RESOLVED, event(60.0), 0, 1, T0, Resolution((Kind.SILENT,), T0 - 300, math.nan))
    with ScriptedServer(http_answer(200), http_answer(200)) as server:
        am = receiver(server)
        assert am.post(cool).outcome is Outcome.ACCEPTED
        assert am.post(back).outcome is Outcome.ACCEPTED
        temperature, silence = posted(server)
    assert sorted(a["labels"]["alertname"] for a in temperature) == [
        "GpuTemperatureCritical",
        "GpuTemperatureForecast",
        "GpuTemperatureWarning",
    ]
    assert {a["endsAt"] for a in temperature} == {rfc3339(T0)}
    assert [a["labels"]["alertname"] for a in silence] == ["GpuSilent"]


def test_a_quiet_warning_keeps_the_warning_alive() -> None:
    """A sighting of kind warning (a warning-band reading in its cooldown) keeps the GpuTemperatureWarning alert
    alive, not a critical one."""
    with ScriptedServer() as server:
        am = receiver(server)
        am.sighted(Sighting(event(85.0, 80.0), T0, Kind.WARNING))
    assert [key[0].value for key in am.book] == ["warning"]
