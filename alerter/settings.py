"""The alerter's settings: the original's variables plus what at-least-once delivery needs.

Built once at start-up from an `Env`; every bad value raises ConfigError naming
the variable, and so does a command-line option (there are none but --help).
The webhook URL is a secret (it authorises posting to a Slack channel), so it
is held in a `Secret` that never shows up in a repr or a log; Alertmanager's
URL may carry credentials too, so it is held in an `Endpoint` that only ever
prints its scheme, host, port and path. At least one receiver is required:
SLACK_WEBHOOK_URL (or its file), ALERTMANAGER_URL, or both.
"""

from __future__ import annotations

import ipaddress
import os
import re
import stat
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final, get_args
from urllib.parse import unquote, unquote_plus, urlsplit, urlunsplit

from shared import settings_help
from shared.config import CommonSettings, ConfigError, Env, SettingDoc, is_host, load_common
from shared.logs import register_secret, register_secret_texts
from shared.models import Celsius

SERVICE: Final = "gpu-temp-alert"
DEFAULT_METRICS_PORT: Final = 8702  # next to the publisher's 8701, clear of the 9100-9999 exporter range
# A threshold at or above the highest temperature a reading may carry (shared.models) could never alert.
MAX_THRESHOLD: Final = float(get_args(Celsius)[1].le)
MAX_PENDING: Final = 1_000_000
MAX_TRACKED: Final = 100_000_000
MAX_MARGIN: Final = 100.0  # °C
MAX_WINDOW: Final = 24 * 3600.0  # longest forecast window, horizon, resolve hold or silence
MIN_FORECAST_WINDOW: Final = 12.0  # one second per bucket of the trend
MIN_EARLY_DURATION: Final = 1.0
MAX_SECRET_FILE: Final = 64 * 1024  # bytes; a webhook URL is about 80
MAX_URL: Final = 8 * 1024
WEBHOOK_EXAMPLE: Final = "https://hooks.slack.com/services/..."
ALERTMANAGER_API_PATH: Final = "/api/v2/alerts"
VALIDITY_FACTOR: Final = 4  # an alert posted to Alertmanager holds for 4 re-send intervals (as Prometheus's)
MAX_ALERT_BUDGET: Final = 100_000
_TOPIC_NAME = re.compile(r"[A-Za-z0-9._-]{1,249}")


@dataclass(frozen=True)
class Secret:
    """A string that prints as asterisks; `reveal()` is the one way to read it.

    Creating one registers it with the log handler, which blanks it (and, for
    a URL, its path) in every line, whichever library writes that line.
    """

    _value: str = field(repr=False)

    def __post_init__(self) -> None:
        register_secret(self._value)

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('********')"

    __str__ = __repr__


@dataclass(frozen=True)
class Endpoint:
    """Where alerts are posted; `shown` is the URL without credentials or query, the only form that is ever printed."""

    _url: str = field(repr=False)
    shown: str
    _secrets: tuple[str, ...] = field(repr=False)

    @classmethod
    def parse(cls, raw: str, name: str = "ALERTMANAGER_URL") -> Endpoint:
        """Alertmanager's base URL (or its full /api/v2/alerts URL); a ConfigError never repeats the value."""
        try:
            parts = urlsplit(raw.strip())
            valid = parts.scheme in ("http", "https") and bool(parts.hostname)
            port = parts.port  # raises ValueError when not a number
        except ValueError:
            valid, port = False, None
        if not valid:
            raise ConfigError(f"{name}: expected an http(s) URL such as http://alertmanager:9093")
        path = parts.path.rstrip("/")
        if not path.endswith(ALERTMANAGER_API_PATH):
            path += ALERTMANAGER_API_PATH
        host = parts.hostname or ""
        netloc = (f"[{host}]" if ":" in host else host) + (f":{port}" if port is not None else "")
        secrets = {parts.username or "", parts.password or "", parts.query, parts.fragment}
        secrets |= {pair.partition("=")[2] for pair in parts.query.split("&")}
        secrets |= {unquote(s) for s in secrets} | {unquote_plus(s) for s in secrets}
        return cls(
            urlunsplit((parts.scheme, parts.netloc, path, parts.query, "")),
            urlunsplit((parts.scheme, netloc, path, "", "")),
            tuple(sorted((s for s in secrets if s), key=len, reverse=True)),
        )

    def __post_init__(self) -> None:
        # Libraries log URLs too (urllib3's "Failed to parse headers (url=...)"): the handler blanks the
        # credentials, and the whole URL when it carries some (the shown form stays readable).
        register_secret_texts(self._secrets if self._url == self.shown else (self._url, *self._secrets))

    def reveal(self) -> str:
        return self._url

    def redact(self, text: str) -> str:
        """`text` with every credential of the URL (user, password, query and its values, raw or decoded) starred."""
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text

    def __repr__(self) -> str:
        return f"Endpoint({self.shown!r})"

    __str__ = __repr__


@dataclass(frozen=True)
class AlertmanagerSettings:
    endpoint: Endpoint | None  # None: Alertmanager is not a receiver
    timeout: float
    resend_interval: float
    backoff_max: float

    @property
    def enabled(self) -> bool:
        return self.endpoint is not None

    @property
    def validity(self) -> float:
        return VALIDITY_FACTOR * self.resend_interval


@dataclass(frozen=True)
class EarlyWarning:
    """Issue 14's settings: all off by default, which leaves the alerter as the original."""

    warning_threshold: float | None = None  # °C
    thresholds_from_gpu: bool = False
    gpu_threshold_margin: float = 5.0  # °C below the GPU's slowdown temperature
    forecast_horizon: float | None = None  # seconds
    forecast_window: float = 120.0  # seconds of event time the trend is fitted over
    resolve_after: float | None = None  # seconds
    resolve_hysteresis: float = 5.0  # °C
    silence_after: float | None = None  # seconds


@dataclass(frozen=True)
class AlerterSettings:
    common: CommonSettings
    source_topic: str
    consumer_group: str
    offset_reset: str
    session_timeout: float
    threshold: float
    cooldown: float  # seconds of event time
    max_clock_skew: float  # how far a device clock may stray from the record's Kafka timestamp
    webhook_url: Secret | None  # None: Slack is not a receiver (ALERTMANAGER_URL is then set)
    slack_channel: str
    slack_timeout: float
    slack_backoff_max: float
    alert_topic: str
    dlq_topic: str
    max_pending_alerts: int
    commit_interval: float
    shutdown_timeout: float
    alertmanager: AlertmanagerSettings
    alert_budget_per_minute: int
    early: EarlyWarning = field(default_factory=EarlyWarning)
    max_tracked_devices: int = 250_000

    @property
    def post_timeout(self) -> float:
        """The longest one post to a configured receiver may take (a hand-over or a shutdown waits that long)."""
        slack = self.slack_timeout if self.webhook_url is not None else 0.0
        return max(slack, self.alertmanager.timeout if self.alertmanager.enabled else 0.0)


def load_settings(env: Env) -> AlerterSettings:
    webhook_url = _webhook_url(env)
    alertmanager = load_alertmanager_settings(env)
    if webhook_url is None and alertmanager.endpoint is None:
        raise ConfigError(
            f"SLACK_WEBHOOK_URL is not set: expected the Slack incoming-webhook URL ({WEBHOOK_EXAMPLE}),"
            " or SLACK_WEBHOOK_URL_FILE naming a file that holds it, or ALERTMANAGER_URL to alert through"
            " Alertmanager (at least one receiver is required)"
        )
    settings = AlerterSettings(
        source_topic=_topic(env, "SOURCE_TOPIC", "gpu-temperature", "the readings topic"),
        consumer_group=_name(
            env, "CONSUMER_GROUP", "gpu-temp-alert-group", "consumer group; its instances share the partitions"
        ),
        offset_reset=env.choice(
            "CONSUMER_OFFSET_RESET", "latest", ("latest", "earliest"),
            help="where a new group starts: latest, or earliest (replays, benchmarks)",
        ),
        session_timeout=env.duration(
            "CONSUMER_SESSION_TIMEOUT", 30.0, minimum=1.0, maximum=3600.0,
            help="how long the group waits for a silent (crashed) instance before giving its partitions away",
        ),
        threshold=env.number(
            "TEMPERATURE_THRESHOLD",
            190.0,
            minimum=0.0,
            maximum=MAX_THRESHOLD,
            exclusive_minimum=True,
            exclusive_maximum=True,
            help="a reading strictly above this is hot and alerts (critical); at most what a reading may carry",
            unit="°C",
        ),
        cooldown=env.duration(
            "ALERT_COOLDOWN", 300.0, maximum=7 * 24 * 3600.0,
            help="per device, in event time (the readings' own timestamps): no second alert within it; 0 alerts on"
            " every hot reading",
        ),
        max_clock_skew=env.duration(
            "MAX_CLOCK_SKEW", 60.0, maximum=24 * 3600.0,
            help="how far a reading's own timestamp is trusted from its Kafka timestamp",
        ),
        webhook_url=webhook_url,
        slack_channel=_channel(env),
        slack_timeout=env.duration(
            "SLACK_TIMEOUT", 10.0, minimum=0.05, maximum=300.0, help="how long one webhook request may take"
        ),
        slack_backoff_max=env.duration(
            "SLACK_BACKOFF_MAX", 30.0, minimum=0.01, maximum=3600.0,
            help="longest wait between two tries of an alert Slack did not accept (exponential backoff with jitter;"
            " a 429's Retry-After is honoured)",
        ),
        alert_topic=_topic(
            env, "ALERT_TOPIC", "gpu-temperature-alerts",
            "delivered alerts (AlertEvent JSON, keyed by device): history, and the cooldowns a restart reads back",
        ),
        dlq_topic=_topic(
            env, "DLQ_TOPIC", "gpu-temperature-dlq",
            "dead letters: unreadable records of both topics, and alerts a receiver refused for good",
        ),
        max_pending_alerts=env.integer(
            "MAX_PENDING_ALERTS", 1000, minimum=1, maximum=MAX_PENDING,
            help="undelivered alerts at which consumption pauses (the readings wait in Kafka); it resumes at half",
            unit="alerts",
        ),
        commit_interval=env.duration(
            "COMMIT_INTERVAL", 1.0, minimum=0.01, maximum=3600.0,
            help="how often the offsets of fully handled records are committed (also on revoke and shutdown)",
        ),
        shutdown_timeout=env.duration(
            "SHUTDOWN_TIMEOUT", 10.0, maximum=600.0,
            help="how long a stopping alerter still tries to deliver what it holds (the rest is read again after a"
            " restart)",
        ),
        alertmanager=alertmanager,
        # -- storms (issue 10 section 3) --
        alert_budget_per_minute=env.integer(
            "ALERT_BUDGET_PER_MINUTE",
            60,
            minimum=1,
            maximum=MAX_ALERT_BUDGET,
            help="alerts posted to Slack one by one in a minute; beyond that they are held back and summed up in"
            " one message at the minute's end (Slack takes about one message a second per webhook)",
            unit="alerts",
        ),
        # -- early warning (issue 14) and bounded state (issue 10 section 3) --
        early=_early_warning(env),
        max_tracked_devices=env.integer(
            "MAX_TRACKED_DEVICES",
            250_000,
            minimum=1000,
            maximum=MAX_TRACKED,
            help="device states kept per instance (about 270 bytes each, 1.5 KB with every early warning on); beyond it"
            " those seen longest ago are forgotten (counted, logged), which may repeat an alert within its cooldown",
        ),
        common=load_common(env, default_metrics_port=DEFAULT_METRICS_PORT),
    )
    warning = settings.early.warning_threshold
    if warning is not None and warning >= settings.threshold:
        raise ConfigError(
            f"WARNING_THRESHOLD={env.raw('WARNING_THRESHOLD')!r}: expected a number below TEMPERATURE_THRESHOLD"
            f" ({settings.threshold:g})"
        )
    return settings


def _early_warning(env: Env) -> EarlyWarning:
    """Warnings, per-GPU thresholds, forecasts, resolved and silent notices (each off unless set)."""
    warning = _optional_number(
        env, "WARNING_THRESHOLD", "°C", "a reading above this and at or below the critical threshold raises a warning"
        " (its own cooldown; a critical alert of the device holds warnings back for one); below TEMPERATURE_THRESHOLD;"
        " unset = no warnings"
    )
    from_gpu = env.boolean(
        "THRESHOLDS_FROM_GPU",
        False,
        help="a reading that carries its GPU's slowdown_temperature (NVML readings do) is critical above it less"
        " GPU_THRESHOLD_MARGIN, and warns the configured distance below that",
    )
    margin = env.number(
        "GPU_THRESHOLD_MARGIN",
        5.0,
        minimum=0.0,
        maximum=MAX_MARGIN,
        unit="°C",
        help="with THRESHOLDS_FROM_GPU: the critical threshold's distance below the GPU's slowdown temperature",
    )
    horizon = _optional_duration(
        env, "FORECAST_HORIZON", "a forecast alert when a device below the critical threshold has a trend expected to"
        " cross it this soon (alerter/domain/forecast.py: runs of up to 3 spikes are filtered out; a load change"
        " settling below passes its test at most 0.1 % of the times it is asked)"
    )
    window = env.duration(
        "FORECAST_WINDOW",
        120.0,
        minimum=MIN_FORECAST_WINDOW,
        maximum=MAX_WINDOW,
        help="event time each device's trend is fitted over (under ±1 °C noise read every 5 s, 5m forecasts steady"
        " ramps from 3 °C/min, 2m from 12 °C/min; the first forecast needs half a window of readings)",
    )
    resolve = _optional_duration(
        env, "RESOLVE_AFTER", "one resolved notice once a device that alerted has stayed RESOLVE_HYSTERESIS below its"
        " lowest threshold (and the temperature of its latest alert), with no forecast standing, this long"
    )
    hysteresis = env.number(
        "RESOLVE_HYSTERESIS",
        5.0,
        minimum=0.0,
        maximum=MAX_MARGIN,
        unit="°C",
        help="how far below its lowest threshold (and the temperature of its latest alert) a device must stay for"
        " RESOLVE_AFTER to count as resolved",
    )
    silence = _optional_duration(
        env, "SILENCE_AFTER", "one silent alert for a device that reported and then sends nothing this long, in its"
        " partition's event time; a notice when it reports again"
    )
    return EarlyWarning(warning, from_gpu, margin, horizon, window, resolve, hysteresis, silence)


def _optional_number(env: Env, name: str, unit: str, help: str) -> float | None:
    env.document(name, "", help, unit)
    if env.raw(name) is None:
        return None
    return env.number(name, 0.0, minimum=0.0, maximum=MAX_THRESHOLD, exclusive_minimum=True, exclusive_maximum=True)


def _optional_duration(env: Env, name: str, help: str) -> float | None:
    env.document(name, "", f"{help}; from 1s to 24h; unset = off", "duration")
    if env.raw(name) is None:
        return None
    return env.duration(name, 0.0, minimum=MIN_EARLY_DURATION, maximum=MAX_WINDOW)


def load_alertmanager_settings(env: Env) -> AlertmanagerSettings:
    """The ALERTMANAGER_* settings; all are read (and documented) even when the URL is unset."""
    env.document(
        "ALERTMANAGER_URL",
        "",
        "Alertmanager's base URL (http://alertmanager:9093): alerts are posted to its /api/v2/alerts as well as, or"
        " instead of, to Slack; may carry credentials (never printed); unset = off",
    )
    raw = env.raw("ALERTMANAGER_URL")
    timeout = env.duration(
        "ALERTMANAGER_TIMEOUT", 10.0, minimum=0.05, maximum=300.0, help="how long one POST to Alertmanager may take"
    )
    interval = env.duration(
        "ALERTMANAGER_RESEND_INTERVAL",
        60.0,
        minimum=1.0,
        maximum=3600.0,
        help="how often an alert whose GPU is still seen hot is re-sent; once it is not, Alertmanager resolves"
        " the alert 4 intervals after the last sighting",
    )
    backoff_max = env.duration(
        "ALERTMANAGER_BACKOFF_MAX",
        30.0,
        minimum=0.01,
        maximum=600.0,
        help="longest wait between two tries of a post Alertmanager did not accept",
    )
    return AlertmanagerSettings(None if raw is None else Endpoint.parse(raw), timeout, interval, backoff_max)


def _channel(env: Env) -> str:
    """`#alerts` when unset; set but empty, no channel at all (the webhook's own), as the original's `omitempty`."""
    channel = env.string(
        "SLACK_CHANNEL",
        "#alerts",
        help="channel named in each message; set but empty, none is named and the webhook's own channel is used",
    )
    return "" if env.is_set("SLACK_CHANNEL") and env.raw("SLACK_CHANNEL") is None else channel


def _webhook_url(env: Env) -> Secret | None:
    """From SLACK_WEBHOOK_URL or the file SLACK_WEBHOOK_URL_FILE names (Docker and Kubernetes secrets), checked;
    None when neither is set (Slack is then not a receiver).

    Errors name the variable, never the value, which is a secret.
    """
    env.document(
        "SLACK_WEBHOOK_URL", "", f"the Slack incoming-webhook URL ({WEBHOOK_EXAMPLE}), a secret never printed; needed"
        " unless SLACK_WEBHOOK_URL_FILE or ALERTMANAGER_URL is set (at least one receiver)",
    )
    env.document(
        "SLACK_WEBHOOK_URL_FILE", "", "a file holding the webhook URL instead (a Docker or Kubernetes secret); set"
        " one of the two, not both",
    )
    allow_http = env.boolean(
        "SLACK_ALLOW_HTTP",
        False,
        help="allow a plain http:// webhook off loopback (a stand-in on a private network); https://, or http:// to"
        " 127.0.0.0/8, ::1 or localhost, need nothing",
    )
    direct, path = env.raw("SLACK_WEBHOOK_URL"), env.raw("SLACK_WEBHOOK_URL_FILE")
    if direct is not None and path is not None:
        raise ConfigError("SLACK_WEBHOOK_URL and SLACK_WEBHOOK_URL_FILE are both set: set only one of them")
    if path is not None:
        source, url = "SLACK_WEBHOOK_URL_FILE", _read_secret_file("SLACK_WEBHOOK_URL_FILE", path)
    elif direct is not None:
        source, url = "SLACK_WEBHOOK_URL", direct
    else:
        return None
    secret = Secret(url)  # registered with the log handler before anything can log it
    _check_webhook_url(source, url, allow_http)
    return secret


def _read_secret_file(name: str, path: str) -> str:
    """The file's text, stripped; one line (naming the file, never its content) for each way it can be unusable."""
    where = f"{name}={path!r}"
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):
            raise ConfigError(f"{where}: not a regular file")
        with open(path, "rb") as file:
            data = file.read(MAX_SECRET_FILE + 1)
    except FileNotFoundError:
        raise ConfigError(f"{where}: no such file") from None
    except PermissionError:
        raise ConfigError(f"{where}: cannot read it (permission denied)") from None
    except OSError as exc:
        raise ConfigError(f"{where}: cannot read it ({exc.strerror or type(exc).__name__})") from None
    if len(data) > MAX_SECRET_FILE:
        raise ConfigError(f"{where}: larger than {MAX_SECRET_FILE // 1024} KiB, so not a webhook URL")
    try:
        text = data.decode("utf-8-sig").strip()
    except UnicodeDecodeError:
        raise ConfigError(f"{where}: not UTF-8 text") from None
    if not text:
        raise ConfigError(f"{where}: the file is empty")
    if len(text.splitlines()) > 1:
        raise ConfigError(f"{where}: expected the webhook URL alone on one line")
    return text


def _check_webhook_url(source: str, url: str, allow_http: bool) -> None:
    """An http(s) URL whose host a client can resolve; plain http only to loopback unless allowed."""
    expected = f"{source}: expected an http(s) URL such as {WEBHOOK_EXAMPLE}"
    if len(url) > MAX_URL or any(c.isspace() or not c.isprintable() for c in url):
        raise ConfigError(expected)
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port  # raises ValueError for a port that is not a number in 0-65535
    except ValueError:
        raise ConfigError(expected) from None
    if parts.scheme not in ("http", "https") or not _valid_host(host) or port == 0:
        raise ConfigError(f"{expected} (with a valid host name and port)")
    if parts.scheme == "http" and not allow_http and not _is_loopback(host):
        raise ConfigError(
            f"{source}: plain http:// would send the secret unencrypted; use https://, or set"
            " SLACK_ALLOW_HTTP=true (for a stand-in on a private network)"
        )


def _valid_host(host: str) -> bool:
    """What the HTTP client can connect to: an IP address or a DNS name (IDNA-encoded, labels of 1-63)."""
    try:
        ascii_host = host.encode("idna").decode("ascii")
    except UnicodeError:
        return False
    return bool(host) and is_host(ascii_host)


def _is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _topic(env: Env, name: str, default: str, help: str) -> str:
    value = env.string(name, default, help=help)
    if not _TOPIC_NAME.fullmatch(value) or value in (".", ".."):
        raise ConfigError(f"{name}={value!r}: expected a topic name of letters, digits, '.', '_' or '-'")
    return value


def _name(env: Env, name: str, default: str, help: str) -> str:
    value = env.string(name, default, help=help)
    if len(value) > 255:
        raise ConfigError(f"{name}: expected at most 255 characters")
    return value


def describe() -> list[SettingDoc]:
    """Every setting the alerter reads, for --help and the docs (with an example webhook, as one receiver is needed)."""
    return settings_help.describe(load_settings, {"SLACK_WEBHOOK_URL": "https://hooks.slack.com/services/T0/B0/EXAMPLE"})


def parse_args(argv: Sequence[str]) -> None:
    """No options besides --help: an unknown one is a ConfigError rather than silently ignored."""
    settings_help.ServiceParser(
        SERVICE,
        "Consume GPU temperature readings from Kafka and alert Slack and/or Alertmanager when a GPU runs too hot."
        " Configured by the environment variables below.",
        describe,
    ).parse_args(list(argv))
