"""Slack incoming-webhook messages (pure formatting) and the webhook client (one attempt per call).

Formatting reproduces the Go original field by field, including what its JSON
`omitempty` tags drop (an empty GPU model, the Time field's `short: false`).
The other kinds (warning, forecast, resolved, silent, and a critical alert
folded from a backlog) each have their own title, colour, icon and text, and
the same eight fields. Every message escapes the untrusted text of a reading: `&`, `<`, `>` as Slack requires,
so a device id cannot ping `@channel` or smuggle in a link, and control,
format and line-separator characters as visible escapes, so a host name
cannot start a new line or reverse its text to read `Temperature: 20°C`.

The client never puts the webhook URL in an exception, a log line or a repr:
failures are described by status, Slack's short body, or the exception type.
Retries are not its business: alerter.receiver.deliver decides when to try again.
"""

from __future__ import annotations

import logging
import math
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import msgspec
import requests
from requests.adapters import HTTPAdapter
from urllib3.exceptions import LocationValueError

from alerter.adapters.http_answers import printable, retry_after, root_cause
from alerter.domain.notification import Backlog, Kind, Notification, Outlook, Resolution, Silence
from alerter.receiver import Attempt, HeldBack, Outcome
from alerter.settings import Secret
from shared.models import AlertEvent
from shared.text import visible

log = logging.getLogger(__name__)

USERNAME: Final = "GPU Temperature Monitor"
ALERT_ICON: Final = ":fire:"
NOTICE_ICON: Final = ":thermometer:"
TITLE: Final = "🔥 GPU IS MELTING 🔥"
FOOTER: Final = "GPU Temperature Monitoring System"
FOOTER_ICON: Final = "https://platform.slack-edge.com/img/default_application_icon.png"
RED: Final = "#FF0000"
ORANGE: Final = "#FFA500"
SEVERE_MARGIN: Final = 20.0  # at or above threshold + 20 °C the attachment is red, below it orange
STARTUP_TEXT: Final = "🚀 GPU Temperature Alert Service started. Monitoring temperatures..."
SHUTDOWN_TEXT: Final = "🛑 GPU Temperature Alert Service shutting down"

WARNING_STYLE: Final = ("⚠️ GPU RUNNING HOT", "#DAA038", ":warning:")  # title, colour, icon
FORECAST_STYLE: Final = ("📈 GPU HEADING FOR ITS THRESHOLD", "#439FE0", ":chart_with_upwards_trend:")
RESOLVED_STYLE: Final = ("✅ GPU TEMPERATURE BACK TO NORMAL", "#2EB886", ":white_check_mark:")
REPORTS_STYLE: Final = ("✅ GPU REPORTING AGAIN", "#2EB886", ":white_check_mark:")
SILENT_STYLE: Final = ("🔇 GPU SILENT", "#808080", ":mute:")
BACKLOG_TITLE: Final = "🔥 GPU RAN HOT WHILE ALERTS WERE BEHIND 🔥"

_ESCAPES = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;"})
_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_encoder = msgspec.json.Encoder()


def escape(text: str) -> str:
    """Untrusted text made safe for a message: Slack's `&`, `<`, `>`, and invisible or line-breaking characters
    (Unicode Cc, Cf, Cs, Zl, Zp: newlines, U+2028/2029, bidi overrides, zero-width and C1 characters) written out."""
    return visible(text.translate(_ESCAPES))


def rfc1123(moment: datetime) -> str:
    """Go's `time.RFC1123` layout in English whatever the locale; a zone without a name prints as -0700."""
    offset = moment.utcoffset() or timedelta(0)
    if offset == timedelta(0):
        zone = "UTC"
    else:
        minutes = int(offset.total_seconds()) // 60
        sign = "+" if minutes >= 0 else "-"
        zone = f"{sign}{abs(minutes) // 60:02d}{abs(minutes) % 60:02d}"
    return (
        f"{_DAYS[moment.weekday()]}, {moment.day:02d} {_MONTHS[moment.month - 1]} {moment.year:04d} "
        f"{moment.hour:02d}:{moment.minute:02d}:{moment.second:02d} {zone}"
    )


def _field(title: str, value: str, short: bool) -> dict[str, Any]:
    """A field as Go's `omitempty` writes it: no empty value, no `short: false`."""
    field: dict[str, Any] = {"title": title}
    if value:
        field["value"] = value
    if short:
        field["short"] = True
    return field


def alert_message(alert: AlertEvent, channel: str) -> dict[str, Any]:
    """The original's alert: one attachment, colour by severity, eight fields."""
    temperature, threshold = alert.temperature, alert.temperature_threshold
    device = escape(alert.device_id)
    return _message(
        alert,
        channel,
        ALERT_ICON,
        fallback=f"GPU IS MELTING: {temperature:.2f}°C on {device}",
        color=ORANGE if temperature < threshold + SEVERE_MARGIN else RED,
        title=TITLE,
        text=f"Temperature of *{temperature:.2f}°C* detected, exceeding threshold of *{threshold:.2f}°C*",
    )


def message_for(notification: Notification, channel: str) -> dict[str, Any]:
    """The webhook message of a notification, by kind; a plain critical one is the original's alert."""
    alert, detail, kind = notification.alert, notification.detail, notification.kind
    if kind is Kind.CRITICAL and isinstance(detail, Backlog):
        return backlog_message(alert, detail, channel)
    if kind is Kind.CRITICAL:
        return alert_message(alert, channel)
    if kind is Kind.WARNING:
        return warning_message(alert, channel)
    if kind is Kind.FORECAST and isinstance(detail, Outlook):
        return forecast_message(alert, detail, channel)
    if kind is Kind.RESOLVED and isinstance(detail, Resolution):
        return resolved_message(alert, detail, channel)
    if kind is Kind.SILENT and isinstance(detail, Silence):
        return silent_message(alert, detail, channel)
    raise ValueError(f"no Slack message for a {kind.value} notification with {type(detail).__name__}")


def warning_message(alert: AlertEvent, channel: str) -> dict[str, Any]:
    """Above WARNING_THRESHOLD, at or below the critical threshold."""
    temperature, threshold = alert.temperature, alert.temperature_threshold
    title, color, icon = WARNING_STYLE
    return _message(
        alert,
        channel,
        icon,
        fallback=f"GPU running hot: {temperature:.2f}°C on {escape(alert.device_id)}",
        color=color,
        title=title,
        text=f"Temperature of *{temperature:.2f}°C* detected, exceeding the warning threshold of *{threshold:.2f}°C*",
    )


def forecast_message(alert: AlertEvent, outlook: Outlook, channel: str) -> dict[str, Any]:
    """Below the critical threshold, and expected to reach it soon."""
    device, temperature = escape(alert.device_id), alert.temperature
    eta = f"in about {duration_text(outlook.eta)}" if outlook.eta >= 30 else "within a minute"
    expected = f"expected to reach {outlook.threshold:.1f} °C {eta} ({outlook.rate:+.1f} °C/min)"
    title, color, icon = FORECAST_STYLE
    return _message(
        alert,
        channel,
        icon,
        fallback=f"GPU heading for {outlook.threshold:.2f}°C: {device} is at {temperature:.2f}°C, {expected}",
        color=color,
        title=title,
        text=f"Temperature of *{temperature:.2f}°C* and rising: {expected}",
    )


def resolved_message(alert: AlertEvent, resolution: Resolution, channel: str) -> dict[str, Any]:
    """The device stayed cool for RESOLVE_AFTER, or it reports again after a silence."""
    device, temperature = escape(alert.device_id), alert.temperature
    seconds = max(0.0, alert.timestamp.timestamp() - resolution.since)
    if Kind.SILENT in resolution.ends:
        title, color, icon = REPORTS_STYLE
        return _message(
            alert,
            channel,
            icon,
            fallback=f"GPU reporting again: {device} at {temperature:.2f}°C",
            color=color,
            title=title,
            text=f"{_where(alert)} reports again after {duration_text(seconds)} without readings, at "
            f"*{temperature:.2f}°C*",
        )
    title, color, icon = RESOLVED_STYLE
    return _message(
        alert,
        channel,
        icon,
        fallback=f"GPU back to normal: {temperature:.2f}°C on {device}",
        color=color,
        title=title,
        text=f"Temperature of *{temperature:.2f}°C*, below *{resolution.below:.2f}°C* for {duration_text(seconds)}"
        f" (since {clock_text(resolution.since)}): resolved",
    )


def silent_message(alert: AlertEvent, silence: Silence, channel: str) -> dict[str, Any]:
    """No readings for SILENCE_AFTER; the fields are the last reading's."""
    text = f"No readings from {_where(alert)} for {duration_text(silence.silent_for)}; last {alert.temperature:.1f} °C"
    title, color, icon = SILENT_STYLE
    return _message(alert, channel, icon, fallback=text, color=color, title=title, text=text)


def backlog_message(alert: AlertEvent, backlog: Backlog, channel: str) -> dict[str, Any]:
    """Critical readings read far behind real time, folded: one message per device; the fields are the peak's."""
    threshold = alert.temperature_threshold
    span = duration_text(backlog.last - backlog.first)
    readings = "1 reading" if backlog.count == 1 else f"{backlog.count} readings"
    return _message(
        alert,
        channel,
        ALERT_ICON,
        fallback=f"GPU ran hot while alerts were behind: peak {backlog.peak:.2f}°C on {escape(alert.device_id)}",
        color=ORANGE if backlog.peak < threshold + SEVERE_MARGIN else RED,
        title=BACKLOG_TITLE,
        text=f"While the alerter was behind, the temperature exceeded *{threshold:.2f}°C* from "
        f"{clock_text(backlog.first)} to {clock_text(backlog.last)} ({span}): {readings}, peak "
        f"*{backlog.peak:.2f}°C*",
    )


def duration_text(seconds: float) -> str:
    """`45 s`, `4 min`, `1 h 5 min`: a length of time as a person says it, rounded."""
    seconds = max(0.0, seconds) if math.isfinite(seconds) else 0.0
    if seconds < 59.5:
        return f"{round(seconds)} s"
    minutes = round(seconds / 60)
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min" if minutes else f"{hours} h"


def clock_text(epoch: float) -> str:
    """`14:03:05 UTC`: an event time in a message's text (the Time field carries the full date)."""
    if not math.isfinite(epoch):
        return "?"
    return datetime.fromtimestamp(min(max(epoch, 0.0), 253402300799.0), UTC).strftime("%H:%M:%S UTC")


def _where(alert: AlertEvent) -> str:
    device = escape(alert.device_id)
    return f"{device} on {escape(alert.host_name)}" if alert.host_name else device


def _message(
    alert: AlertEvent, channel: str, icon: str, *, fallback: str, color: str, title: str, text: str
) -> dict[str, Any]:
    """One attachment with the original's eight fields (the alert's reading and threshold) and footer."""
    temperature, threshold = alert.temperature, alert.temperature_threshold
    device = escape(alert.device_id)
    attachment: dict[str, Any] = {
        "fallback": fallback,
        "color": color,
        "title": title,
        "text": text,
        "fields": [
            _field("Device ID", device, True),
            _field("Temperature", f"{temperature:.2f}°C", True),
            _field("Threshold", f"{threshold:.2f}°C", True),
            _field("GPU Model", escape(alert.gpu_model), True),
            _field("Host", escape(alert.host_name), True),
            _field("GPU Utilization", f"{alert.gpu_util:.2f}%", True),
            _field("Power Consumption", f"{alert.power_consume:.2f} W", True),
            _field("Time", rfc1123(alert.timestamp), False),
        ],
        "footer": FOOTER,
        "footer_icon": FOOTER_ICON,
    }
    unix = math.floor(alert.timestamp.timestamp())
    if unix:
        attachment["ts"] = unix
    message: dict[str, Any] = {"username": USERNAME, "icon_emoji": icon, "attachments": [attachment]}
    if channel:
        message = {"channel": channel, **message}
    return message


SUMMARY_DEVICES: Final = 20  # device ids a summary names; the rest are counted


def summary_message(held: HeldBack, channel: str) -> dict[str, Any]:
    """One message for the alerts the budget held back: how many, since when, the hottest, the first device ids."""
    devices = list(dict.fromkeys(escape(alert.device_id) for alert in held.alerts))
    named = ", ".join(devices[:SUMMARY_DEVICES])
    more = len(devices) - SUMMARY_DEVICES
    hottest = max(held.alerts, key=lambda alert: alert.temperature)
    since = rfc1123(datetime.fromtimestamp(held.since, UTC))
    count = len(held.alerts)
    text = (
        f"*{count} more GPU temperature alert{'s' if count != 1 else ''}* since {since}, held back because more than "
        f"{held.budget} alerts a minute were due (ALERT_BUDGET_PER_MINUTE), for {len(devices)} "
        f"device{'s' if len(devices) != 1 else ''}: {named}{f' and {more} more' if more > 0 else ''}. "
        f"Hottest: {escape(hottest.device_id)} at {hottest.temperature:.2f}°C "
        f"(threshold {hottest.temperature_threshold:.2f}°C)."
    )
    message: dict[str, Any] = {
        "username": USERNAME,
        "icon_emoji": ALERT_ICON,
        "attachments": [{"fallback": f"{count} more GPU temperature alerts", "color": RED, "title": TITLE,
                         "text": text, "footer": FOOTER, "footer_icon": FOOTER_ICON}],
    }
    if channel:
        message = {"channel": channel, **message}
    return message


def notice_message(text: str, channel: str) -> dict[str, Any]:
    """A plain notification (start-up, shutdown), as the original's SendNotification."""
    message: dict[str, Any] = {"text": text, "username": USERNAME, "icon_emoji": NOTICE_ICON}
    if channel:
        message = {"channel": channel, **message}
    return message


def encode_message(message: dict[str, Any]) -> bytes:
    return _encoder.encode(message)




class WebhookClient:
    """Posts JSON to the webhook, one attempt per `post`, classified as accepted, worth a retry, or refused.

    urllib3's own retries are off (max_retries=0): retries are an explicit
    loop (alerter.receiver.deliver), unbounded so a long Slack outage drops no
    alert, interruptible (shutdown, partition moved) and counted per reason.
    A 429's `Retry-After` is parsed here, by urllib3, into seconds.
    """

    def __init__(self, url: Secret, *, timeout: float, session: requests.Session | None = None) -> None:
        self._url = url
        self._timeout = (min(timeout, 5.0), timeout)  # (connect, read)
        self._session = session or requests.Session()
        self._session.mount("http://", HTTPAdapter(max_retries=0))
        self._session.mount("https://", HTTPAdapter(max_retries=0))

    def __repr__(self) -> str:
        return "WebhookClient(url=Secret('********'))"

    def close(self) -> None:
        self._session.close()

    def post(self, payload: bytes, timeout: float | None = None) -> Attempt:
        """One attempt; `timeout` (seconds) replaces the configured one for this call."""
        try:
            response = self._session.post(
                self._url.reveal(),
                data=payload,
                headers={"Content-Type": "application/json; charset=utf-8"},
                timeout=self._timeout if timeout is None else (min(timeout, self._timeout[0]), timeout),
                allow_redirects=False,
            )
        except requests.Timeout as exc:
            return Attempt(Outcome.RETRY, "timeout", error=type(exc).__name__)
        except requests.ConnectionError as exc:
            return Attempt(Outcome.RETRY, "connection", error=root_cause(exc))
        except (requests.exceptions.InvalidURL, LocationValueError, UnicodeError) as exc:
            # The URL itself cannot be used (say, a host label over 63 characters): no retry will change that.
            return Attempt(Outcome.REJECTED, "invalid_url", error=type(exc).__name__)
        except Exception as exc:  # noqa: BLE001 - any other failure of a post is one more failed attempt, never a crash
            return Attempt(Outcome.RETRY, "error", error=type(exc).__name__)
        try:
            return self._classify(response)
        except Exception as exc:  # noqa: BLE001 - e.g. a body that cannot be read: retried like a dropped connection
            return Attempt(Outcome.RETRY, "error", error=type(exc).__name__)
        finally:
            response.close()

    def _classify(self, response: requests.Response) -> Attempt:
        status = response.status_code
        body = printable(response.text)
        if 200 <= status < 300:
            return Attempt(Outcome.ACCEPTED, "accepted", status)
        if status == 429:
            return Attempt(Outcome.RETRY, "rate_limited", status, body, retry_after(response))
        if status >= 500:
            return Attempt(Outcome.RETRY, "server_error", status, body)
        return Attempt(Outcome.REJECTED, "rejected", status, body)



