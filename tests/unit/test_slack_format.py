"""Slack messages equal the Go original's field by field, with untrusted text escaped."""

from __future__ import annotations

import unicodedata
from datetime import datetime, timedelta, timezone

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from alerter.receiver import HeldBack
from alerter.slack import (
    SHUTDOWN_TEXT,
    STARTUP_TEXT,
    alert_message,
    encode_message,
    escape,
    notice_message,
    rfc1123,
    summary_message,
)
from shared.text import UNSAFE_CATEGORIES, is_unsafe
from tests.alerter_support import MOMENT, make_alert


def test_alert_message_matches_the_original_field_by_field() -> None:
    """Channel, username, icon, and the one attachment with its eight fields, as the Go notifier builds them."""
    assert alert_message(make_alert(), "#alerts") == {
        "channel": "#alerts",
        "username": "GPU Temperature Monitor",
        "icon_emoji": ":fire:",
        "attachments": [
            {
                "fallback": "GPU IS MELTING: 201.46°C on gpu-3",
                "color": "#FF0000",
                "title": "🔥 GPU IS MELTING 🔥",
                "text": "Temperature of *201.46°C* detected, exceeding threshold of *150.00°C*",
                "ts": 1136214245,
                "fields": [
                    {"title": "Device ID", "value": "gpu-3", "short": True},
                    {"title": "Temperature", "value": "201.46°C", "short": True},
                    {"title": "Threshold", "value": "150.00°C", "short": True},
                    {"title": "GPU Model", "value": "NVIDIA H100 80GB HBM3", "short": True},
                    {"title": "Host", "value": "node-07", "short": True},
                    {"title": "GPU Utilization", "value": "97.50%", "short": True},
                    {"title": "Power Consumption", "value": "412.35 W", "short": True},
                    {"title": "Time", "value": "Mon, 02 Jan 2006 15:04:05 UTC"},
                ],
                "footer": "GPU Temperature Monitoring System",
                "footer_icon": "https://platform.slack-edge.com/img/default_application_icon.png",
            }
        ],
    }


@pytest.mark.parametrize(
    ("temperature", "colour"),
    [(150.01, "#FFA500"), (169.99, "#FFA500"), (170.0, "#FF0000"), (250.0, "#FF0000")],
)
def test_colour_is_orange_below_threshold_plus_20_and_red_from_there(temperature: float, colour: str) -> None:
    """The original's rule: `#FFA500` while temperature < threshold + 20, `#FF0000` otherwise."""
    assert alert_message(make_alert(temperature=temperature), "#alerts")["attachments"][0]["color"] == colour


def test_empty_values_are_dropped_like_go_omitempty() -> None:
    """Go's omitempty drops an empty GPU model or host value and an empty channel, as ours does."""
    message = alert_message(make_alert(gpu_model="", host_name=""), "")
    assert "channel" not in message
    fields = {f["title"]: f for f in message["attachments"][0]["fields"]}
    assert fields["GPU Model"] == {"title": "GPU Model", "short": True}
    assert fields["Host"] == {"title": "Host", "short": True}


def test_untrusted_text_is_escaped_everywhere_it_appears() -> None:
    """Device id, host and model cannot ping @channel or inject links: &, < and > are escaped."""
    alert = make_alert(device_id="<!channel>&x", host_name="<http://evil|click>", gpu_model="A&B<>")
    message = alert_message(alert, "#alerts")
    attachment = message["attachments"][0]
    fields = {f["title"]: f.get("value") for f in attachment["fields"]}
    assert fields["Device ID"] == "&lt;!channel&gt;&amp;x"
    assert fields["Host"] == "&lt;http://evil|click&gt;"
    assert fields["GPU Model"] == "A&amp;B&lt;&gt;"
    assert attachment["fallback"] == "GPU IS MELTING: 201.46°C on &lt;!channel&gt;&amp;x"
    assert "<" not in encode_message(message).decode()


@given(st.text().filter(lambda t: not any(is_unsafe(c) for c in t)))
def test_escaping_printable_text_round_trips(text: str) -> None:
    """Printable text (any script, emoji) loses nothing but its meaning to Slack: `&`, `<`, `>` come back."""
    escaped = escape(text)
    assert "<" not in escaped
    assert ">" not in escaped
    assert escaped.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&") == text


HOSTILE = ["\u202e", "\u2066", "\u200b", "\u200d", "\u2028", "\u2029", "\x85", "\x9b", "\r", "\n", "\x00", "\ud800"]


@settings(max_examples=300)
@given(st.lists(st.one_of(st.text(max_size=4), st.sampled_from([*HOSTILE, "<", ">", "&"])), max_size=10).map("".join))
def test_escaped_text_has_nothing_hidden_or_line_breaking(text: str) -> None:
    """Whatever a reading's text holds, the escaped form has no Unicode control, format, surrogate or line/paragraph
    separator character, no raw `<` or `>`, and every `&` starts one of Slack's three entities."""
    escaped = escape(text)
    assert [c for c in escaped if unicodedata.category(c) in UNSAFE_CATEGORIES] == []
    assert "<" not in escaped
    assert ">" not in escaped
    assert escaped.count("&") == sum(escaped.count(e) for e in ("&amp;", "&lt;", "&gt;"))
    assert len(escaped.splitlines()) <= 1


def test_a_host_name_cannot_disguise_itself_in_slack() -> None:
    """A bidi override, zero-width space, newline or U+2028 in a host name shows up as its escape in the message."""
    alert = make_alert(host_name="node\u202eC°02 :erutarepmeT", device_id="gpu-1\u200b\nTemperature: 20°C\u2028")
    fields = {f["title"]: f.get("value") for f in alert_message(alert, "#c")["attachments"][0]["fields"]}
    assert fields["Host"] == "node\\u202eC°02 :erutarepmeT"
    assert fields["Device ID"] == "gpu-1\\u200b\\nTemperature: 20°C\\u2028"


@pytest.mark.parametrize(
    ("value", "shown"),
    [(187.126, "187.13"), (150.0, "150.00"), (99.999, "100.00"), (0.004, "0.00")],
)
def test_numbers_have_two_decimals(value: float, shown: str) -> None:
    """Temperatures, threshold, utilization and power print with two decimals as Go's %.2f."""
    message = alert_message(make_alert(temperature=value, gpu_util=min(value, 100.0)), "#c")
    assert message["attachments"][0]["fields"][1]["value"] == f"{shown}°C"


def test_time_field_uses_go_rfc1123_with_numeric_zone_for_offsets() -> None:
    """A UTC time prints `UTC`; an offset without a zone name prints as Go does, `+0200`."""
    assert rfc1123(MOMENT) == "Mon, 02 Jan 2006 15:04:05 UTC"
    assert (
        rfc1123(datetime(2024, 2, 29, 1, 2, 3, tzinfo=timezone(timedelta(hours=2))))
        == "Thu, 29 Feb 2024 01:02:03 +0200"
    )
    assert rfc1123(datetime(2024, 12, 1, 0, 0, 0, tzinfo=timezone(timedelta(hours=-5, minutes=-30)))) == (
        "Sun, 01 Dec 2024 00:00:00 -0530"
    )


def test_ts_is_the_readings_unix_second() -> None:
    """`ts` is the reading's time truncated to whole seconds, whatever its zone."""
    local = MOMENT.astimezone(timezone(timedelta(hours=9)))
    assert alert_message(make_alert(timestamp=local), "#c")["attachments"][0]["ts"] == 1136214245


def test_notices_match_the_original() -> None:
    """Start-up and shutdown notices: plain text, the thermometer icon, the same username and channel."""
    assert notice_message(STARTUP_TEXT, "#alerts") == {
        "channel": "#alerts",
        "text": "🚀 GPU Temperature Alert Service started. Monitoring temperatures...",
        "username": "GPU Temperature Monitor",
        "icon_emoji": ":thermometer:",
    }
    assert notice_message(SHUTDOWN_TEXT, "#ops")["text"] == "🛑 GPU Temperature Alert Service shutting down"


def test_encoded_message_is_json_slack_can_read() -> None:
    """The bytes posted are UTF-8 JSON that decodes back to the same message."""
    message = alert_message(make_alert(), "#alerts")
    assert msgspec.json.decode(encode_message(message)) == message


def test_a_summary_names_the_first_devices_counts_the_rest_and_escapes_them() -> None:
    """The summary of held-back alerts says how many, for how many devices, the first 20 ids (escaped) and the
    count of the others, and the hottest reading; with an empty channel none is named."""
    alerts = [make_alert(device_id=f"gpu-{n}", temperature=160.0 + n) for n in range(25)]
    alerts.append(make_alert(device_id="<!channel>", temperature=150.5))
    held = HeldBack(tuple(alerts), MOMENT.timestamp(), 60)
    message = summary_message(held, "#alerts")
    [attachment] = message["attachments"]
    text = attachment["text"]
    assert text.startswith("*26 more GPU temperature alerts* since Mon, 02 Jan 2006 15:04:05 UTC, held back because")
    assert "more than 60 alerts a minute" in text
    assert "for 26 devices: gpu-0, gpu-1," in text
    assert "gpu-19 and 6 more." in text
    assert "gpu-20" not in text
    assert "Hottest: gpu-24 at 184.00°C (threshold 150.00°C)." in text
    assert message["channel"] == "#alerts"
    assert "channel" not in summary_message(HeldBack((alerts[-1],), MOMENT.timestamp(), 60), "")
    assert "&lt;!channel&gt;" in summary_message(HeldBack((alerts[-1],), MOMENT.timestamp(), 60), "")[
        "attachments"
    ][0]["text"]
