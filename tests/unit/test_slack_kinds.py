"""Warning, forecast, resolved, silent and backlog messages: each its own title, colour, icon and text, the
original's eight fields, the same escaping."""

from __future__ import annotations

import math
import unicodedata
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from alerter.domain.notification import (
    TEMPERATURE_KINDS,
    Backlog,
    Kind,
    Notification,
    Outlook,
    Resolution,
    Silence,
)
from alerter.slack import alert_message, duration_text, message_for
from shared.models import AlertEvent
from shared.text import UNSAFE_CATEGORIES
from tests.alerter_support import MOMENT, make_alert

AT = MOMENT.timestamp()
FIELDS = ["Device ID", "Temperature", "Threshold", "GPU Model", "Host", "GPU Utilization", "Power Consumption", "Time"]


def notification(kind: Kind, alert: AlertEvent, detail: Any = None) -> Notification:
    return Notification(1, kind, alert, 0, 0, AT, detail)


def every_kind(alert: AlertEvent) -> dict[str, dict[str, Any]]:
    """One message of each kind about `alert`, as the Slack receiver renders them."""
    return {
        "critical": message_for(notification(Kind.CRITICAL, alert), "#alerts"),
        "warning": message_for(notification(Kind.WARNING, alert), "#alerts"),
        "forecast": message_for(notification(Kind.FORECAST, alert, Outlook(87.0, 250.0, 2.1, 78.2)), "#alerts"),
        "resolved": message_for(
            notification(Kind.RESOLVED, alert, Resolution(TEMPERATURE_KINDS, AT - 120, 75.0)), "#alerts"
        ),
        "reports": message_for(
            notification(Kind.RESOLVED, alert, Resolution((Kind.SILENT,), AT - 300, math.nan)), "#alerts"
        ),
        "silent": message_for(notification(Kind.SILENT, alert, Silence(AT, 120.0)), "#alerts"),
        "backlog": message_for(notification(Kind.CRITICAL, alert, Backlog(AT - 3480, AT, 201.456, 37)), "#alerts"),
    }


def attachment(message: dict[str, Any]) -> dict[str, Any]:
    [only] = message["attachments"]
    assert isinstance(only, dict)
    return only


def test_a_plain_critical_notification_is_the_original_message() -> None:
    """The critical kind without a backlog renders exactly as alert_message (pinned in test_slack_format)."""
    alert = make_alert()
    assert message_for(notification(Kind.CRITICAL, alert), "#alerts") == alert_message(alert, "#alerts")


def test_each_kind_has_its_own_title_colour_and_icon_and_the_same_fields() -> None:
    """Seven renderings, seven titles; every one has the original's eight fields in order, channel, username
    and footer."""
    messages = every_kind(make_alert(device_id="gpu-0003", host_name="node-07", temperature=91.4))
    titles = {name: attachment(m)["title"] for name, m in messages.items()}
    assert len(set(titles.values())) == len(titles)
    assert {name: (attachment(m)["color"], m["icon_emoji"]) for name, m in messages.items()} == {
        "critical": ("#FFA500", ":fire:"),
        "warning": ("#DAA038", ":warning:"),
        "forecast": ("#439FE0", ":chart_with_upwards_trend:"),
        "resolved": ("#2EB886", ":white_check_mark:"),
        "reports": ("#2EB886", ":white_check_mark:"),
        "silent": ("#808080", ":mute:"),
        "backlog": ("#FF0000", ":fire:"),  # by its peak, as the original colours by temperature
    }
    for message in messages.values():
        assert [f["title"] for f in attachment(message)["fields"]] == FIELDS
        assert (message["channel"], message["username"]) == ("#alerts", "GPU Temperature Monitor")
        assert attachment(message)["footer"] == "GPU Temperature Monitoring System"


def test_the_texts_say_what_happened() -> None:
    """Forecast and silence read as the issue's examples; resolved, reports-again, warning and backlog say their
    numbers."""
    texts = {
        name: attachment(m)["text"]
        for name, m in every_kind(make_alert(device_id="gpu-0003", host_name="node-07", temperature=91.4)).items()
    }
    assert (
        texts["forecast"]
        == "Temperature of *91.40°C* and rising: expected to reach 87.0 °C in about 4 min (+2.1 °C/min)"
    )
    assert texts["silent"] == "No readings from gpu-0003 on node-07 for 2 min; last 91.4 °C"
    assert texts["warning"] == "Temperature of *91.40°C* detected, exceeding the warning threshold of *150.00°C*"
    assert texts["resolved"] == "Temperature of *91.40°C*, below *75.00°C* for 2 min (since 15:02:05 UTC): resolved"
    assert texts["reports"] == "gpu-0003 on node-07 reports again after 5 min without readings, at *91.40°C*"
    assert texts["backlog"] == (
        "While the alerter was behind, the temperature exceeded *150.00°C* from 14:06:05 UTC to 15:04:05 UTC"
        " (58 min): 37 readings, peak *201.46°C*"
    )


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0, "0 s"), (44.6, "45 s"), (59.4, "59 s"), (59.6, "1 min"), (250, "4 min"), (3599, "1 h"), (3900, "1 h 5 min")],
)
def test_durations_read_as_a_person_says_them(seconds: float, text: str) -> None:
    """Seconds below a minute, minutes below an hour, then hours and minutes; rounded."""
    assert duration_text(seconds) == text


@settings(max_examples=200)
@given(st.text(min_size=1, max_size=30), st.text(max_size=30), st.text(max_size=30))
def test_every_kind_escapes_the_reading_s_text(device: str, host: str, model: str) -> None:
    """Whatever device id, host or model a reading carries, no string of any kind's message holds a raw `<` or
    `>`, or a control, format or line-separator character."""
    messages = every_kind(make_alert(device_id=device, host_name=host, gpu_model=model))
    for message in messages.values():
        texts = [attachment(message)["text"], attachment(message)["fallback"]]
        texts += [f.get("value", "") for f in attachment(message)["fields"]]
        for text in texts:
            assert "<" not in text
            assert ">" not in text
            assert not [c for c in text if unicodedata.category(c) in UNSAFE_CATEGORIES]
