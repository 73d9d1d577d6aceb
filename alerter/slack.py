"""Slack incoming-webhook messages (pure formatting) and the webhook client (one attempt per call).

Formatting reproduces the Go original field by field, including what its JSON
`omitempty` tags drop (an empty GPU model, the Time field's `short: false`),
and escapes the untrusted text of a reading: `&`, `<`, `>` as Slack requires,
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
    attachment: dict[str, Any] = {
        "fallback": f"GPU IS MELTING: {temperature:.2f}°C on {device}",
        "color": ORANGE if temperature < threshold + SEVERE_MARGIN else RED,
        "title": TITLE,
        "text": f"Temperature of *{temperature:.2f}°C* detected, exceeding threshold of *{threshold:.2f}°C*",
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
    message: dict[str, Any] = {"username": USERNAME, "icon_emoji": ALERT_ICON, "attachments": [attachment]}
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



