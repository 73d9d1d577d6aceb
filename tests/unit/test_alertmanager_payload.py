"""Alertmanager v2 payloads: labels, annotations and times as the OpenAPI `postableAlert` and Alertmanager require."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from alerter.alertmanager import (
    GpuAlert,
    InvalidAlert,
    Kind,
    alert_annotations,
    alert_labels,
    check_postable,
    postable,
    rfc3339,
)
from shared.models import AlertEvent

T0 = datetime(2026, 3, 1, 12, 0, 0, 250000, tzinfo=UTC).timestamp()


def gpu_alert(kind: Kind = Kind.CRITICAL, **changes: Any) -> GpuAlert:
    values: dict[str, Any] = {
        "kind": kind,
        "device_id": "gpu-0003",
        "host_name": "node-07",
        "gpu_model": "NVIDIA A100",
        "temperature": 92.4,
        "threshold": 90.0,
        "starts_at": T0,
    }
    return GpuAlert(**(values | changes))


def test_labels_identify_kind_severity_and_gpu() -> None:
    """A critical alert carries alertname, severity, device, host and model labels, nothing else."""
    assert alert_labels(gpu_alert()) == {
        "alertname": "GpuTemperatureCritical",
        "severity": "critical",
        "device_id": "gpu-0003",
        "host_name": "node-07",
        "gpu_model": "NVIDIA A100",
    }


@pytest.mark.parametrize(
    ("kind", "alertname", "severity"),
    [
        (Kind.CRITICAL, "GpuTemperatureCritical", "critical"),
        (Kind.WARNING, "GpuTemperatureWarning", "warning"),
        (Kind.FORECAST, "GpuTemperatureForecast", "warning"),
        (Kind.SILENT, "GpuSilent", "critical"),
    ],
)
def test_each_kind_has_its_alertname_and_severity(kind: Kind, alertname: str, severity: str) -> None:
    """Every alert kind of the early-warning issue maps to its own alertname and a severity."""
    labels = alert_labels(gpu_alert(kind))
    assert (labels["alertname"], labels["severity"]) == (alertname, severity)


def test_empty_host_and_model_are_left_out() -> None:
    """Empty label values are omitted, as Alertmanager would drop them (same fingerprint either way)."""
    assert set(alert_labels(gpu_alert(host_name="", gpu_model=""))) == {"alertname", "severity", "device_id"}


def test_critical_annotations_state_temperature_and_threshold() -> None:
    """The summary and description give the temperature and the threshold it crossed."""
    assert alert_annotations(gpu_alert(), resolved=False) == {
        "summary": "GPU gpu-0003 on node-07 at 92.40°C, above 90.00°C",
        "description": "Temperature of 92.40°C detected on GPU gpu-0003 on node-07 (NVIDIA A100), "
        "exceeding threshold of 90.00°C.",
    }


def test_resolved_annotations_say_it_is_back_below() -> None:
    """A resolution's summary says the GPU is back below its threshold, at what temperature."""
    text = alert_annotations(gpu_alert(temperature=71.5), resolved=True)
    assert text["summary"] == "GPU gpu-0003 on node-07 is back to 71.50°C"
    assert "below its threshold of 90.00°C" in text["description"]


def test_detail_extends_the_description() -> None:
    """A forecast's extra sentence (its ETA) ends the description."""
    text = alert_annotations(gpu_alert(Kind.FORECAST, detail="Expected in about 4 min."), resolved=False)
    assert text["description"].endswith("threshold of 90.00°C. Expected in about 4 min.")


def test_postable_has_rfc3339_times_and_validates() -> None:
    """startsAt is the event time and endsAt the given end, both RFC 3339 UTC; the result passes the checks."""
    alert = postable(gpu_alert(), T0 + 240)
    assert alert["startsAt"] == "2026-03-01T12:00:00.250000Z"
    assert alert["endsAt"] == "2026-03-01T12:04:00.250000Z"
    check_postable(alert)


def test_start_never_after_end() -> None:
    """A start after the end (a device clock ahead) is held to the end, which Alertmanager requires."""
    alert = postable(gpu_alert(starts_at=T0 + 60), T0)
    assert alert["startsAt"] == alert["endsAt"]


def test_from_event_takes_the_reading_and_threshold() -> None:
    """An alert record becomes a GpuAlert with its device, host, model, temperature, threshold and event time."""
    event = AlertEvent(
        device_id="gpu-1",
        temperature=95.0,
        timestamp=datetime.fromtimestamp(T0, UTC),
        gpu_model="H100",
        host_name="h",
        power_consume=300.0,
        gpu_util=90.0,
        temperature_threshold=90.0,
    )
    assert GpuAlert.from_event(event, Kind.WARNING) == GpuAlert(Kind.WARNING, "gpu-1", "h", "H100", 95.0, 90.0, T0)
    assert GpuAlert.from_event(event, Kind.CRITICAL, at=T0 + 5).starts_at == T0 + 5


def test_rfc3339_holds_absurd_times_in_range() -> None:
    """NaN, negative and far-future times become valid RFC 3339 times within 1970..9999."""
    assert rfc3339(float("nan")) == "1970-01-01T00:00:00.000000Z"
    assert rfc3339(-1e12) == "1970-01-01T00:00:00.000000Z"
    assert rfc3339(1e300).startswith("9999-12-31T23:59:59")


hostile_text = st.text(st.characters(), max_size=64)  # any code point, lone surrogates and controls included


any_number = st.floats(allow_nan=True, allow_infinity=True)
any_alert = st.builds(
    GpuAlert,
    st.sampled_from(Kind),
    hostile_text.filter(bool),
    hostile_text,
    hostile_text,
    any_number,
    any_number,
    st.floats(min_value=-1e12, max_value=1e12),
    hostile_text,
)


@given(alert=any_alert, ends_after=st.floats(min_value=-1e6, max_value=1e6), resolved=st.booleans())
def test_any_alert_builds_a_valid_payload(alert: GpuAlert, ends_after: float, resolved: bool) -> None:
    """Whatever text and numbers an alert holds, its payload is valid UTF-8 JSON Alertmanager accepts."""
    payload = postable(alert, alert.starts_at + ends_after, resolved=resolved)
    check_postable(payload)
    assert payload["labels"]["alertname"] == alert.kind.alertname


@pytest.mark.parametrize(
    ("payload", "problem"),
    [
        ({"startsAt": "2026-01-01T00:00:00Z", "endsAt": "2026-01-01T00:00:00Z"}, "labels"),
        ({"labels": {}, "startsAt": "2026-01-01T00:00:00Z", "endsAt": "2026-01-01T00:00:00Z"}, "labels"),
        ({"labels": {"a": ""}, "startsAt": "2026-01-01T00:00:00Z", "endsAt": "2026-01-01T00:00:00Z"}, "labels"),
        ({"labels": {"alert-name": "x"}, "startsAt": "2026-01-01T00:00:00Z", "endsAt": "2026-01-01T00:00:00Z"}, "name"),
        ({"labels": {"0a": "x"}, "startsAt": "2026-01-01T00:00:00Z", "endsAt": "2026-01-01T00:00:00Z"}, "name"),
        ({"labels": {"a": "\ud800"}, "startsAt": "2026-01-01T00:00:00Z", "endsAt": "2026-01-01T00:00:00Z"}, "UTF-8"),
        ({"labels": {"a": 1}, "startsAt": "2026-01-01T00:00:00Z", "endsAt": "2026-01-01T00:00:00Z"}, "UTF-8"),
        ({"labels": {"a": "x"}, "startsAt": "2026-01-01 00:00:00", "endsAt": "2026-01-01T00:00:00Z"}, "RFC 3339"),
        ({"labels": {"a": "x"}, "startsAt": "2026-13-01T00:00:00Z", "endsAt": "2026-01-01T00:00:00Z"}, "RFC 3339"),
        ({"labels": {"a": "x"}, "startsAt": "٢٠٢٦-01-01T00:00:00Z", "endsAt": "2026-01-01T00:00:00Z"}, "RFC 3339"),
        ({"labels": {"a": "x"}, "startsAt": "2026-01-02T00:00:00Z", "endsAt": "2026-01-01T00:00:00Z"}, "before"),
        ({"labels": {"a": "x"}, "annotations": {"a b": "x"}, "startsAt": "2026-01-01T00:00:00Z"}, "name"),
        (
            {"labels": {"a": "x"}, "startsAt": "2026-01-01T00:00:00Z", "endsAt": "2026-01-01T00:00:00Z", "x": 1},
            "unknown",
        ),
    ],
)
def test_check_postable_refuses_what_alertmanager_refuses(payload: dict[str, Any], problem: str) -> None:
    """No non-empty label, bad names, non-UTF-8 values, bad times or an end before the start are InvalidAlert."""
    with pytest.raises(InvalidAlert, match=problem):
        check_postable(payload)
