"""The alerter's settings: the original's variables plus what at-least-once delivery needs.

Built once at start-up from an `Env`; every bad value raises ConfigError naming
the variable, and so does a command-line option (there are none but --help).
The webhook URL is a secret (it authorises posting to a Slack channel), so it
is held in a `Secret` that never shows up in a repr or a log.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final, NoReturn
from urllib.parse import urlsplit

from shared.config import CommonSettings, ConfigError, Env, load_common
from shared.logs import register_secret

SERVICE: Final = "gpu-temp-alert"
DEFAULT_METRICS_PORT: Final = 9101
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
class AlerterSettings:
    common: CommonSettings
    source_topic: str
    consumer_group: str
    offset_reset: str
    session_timeout: float
    threshold: float
    cooldown: float  # seconds of event time
    max_clock_skew: float  # how far a device clock may stray from the record's Kafka timestamp
    webhook_url: Secret
    slack_channel: str
    slack_timeout: float
    slack_backoff_max: float
    alert_topic: str
    dlq_topic: str
    max_pending_alerts: int
    commit_interval: float
    shutdown_timeout: float


def load_settings(env: Env) -> AlerterSettings:
    return AlerterSettings(
        common=load_common(env, default_metrics_port=DEFAULT_METRICS_PORT),
        source_topic=_topic(env, "SOURCE_TOPIC", "gpu-temperature"),
        consumer_group=_name(env, "CONSUMER_GROUP", "gpu-temp-alert-group"),
        offset_reset=env.choice("CONSUMER_OFFSET_RESET", "latest", ("latest", "earliest")),
        session_timeout=_session_timeout(env),
        threshold=env.number("TEMPERATURE_THRESHOLD", 190.0, minimum=0.0, exclusive_minimum=True),
        cooldown=env.duration("ALERT_COOLDOWN", 300.0),
        max_clock_skew=env.duration("MAX_CLOCK_SKEW", 60.0),
        webhook_url=_webhook_url(env),
        slack_channel=env.string("SLACK_CHANNEL", "#alerts"),
        slack_timeout=env.duration("SLACK_TIMEOUT", 10.0, minimum=0.05),
        slack_backoff_max=env.duration("SLACK_BACKOFF_MAX", 30.0, minimum=0.01),
        alert_topic=_topic(env, "ALERT_TOPIC", "gpu-temperature-alerts"),
        dlq_topic=_topic(env, "DLQ_TOPIC", "gpu-temperature-dlq"),
        max_pending_alerts=env.integer("MAX_PENDING_ALERTS", 1000, minimum=1),
        commit_interval=env.duration("COMMIT_INTERVAL", 1.0, minimum=0.01),
        shutdown_timeout=env.duration("SHUTDOWN_TIMEOUT", 10.0),
    )


def _session_timeout(env: Env) -> float:
    """How long the group waits for a silent member (a crashed one) before giving its partitions away."""
    value = env.duration("CONSUMER_SESSION_TIMEOUT", 30.0, minimum=1.0)
    if value > 3600:
        raise ConfigError(f"CONSUMER_SESSION_TIMEOUT={env.raw('CONSUMER_SESSION_TIMEOUT')!r}: expected at most 1h")
    return value


def _webhook_url(env: Env) -> Secret:
    """Required and checked for shape; the error never repeats the value, which is a secret."""
    raw = env.required("SLACK_WEBHOOK_URL", "the Slack incoming-webhook URL (https://hooks.slack.com/services/...)")
    try:
        parts = urlsplit(raw)
        valid = parts.scheme in ("http", "https") and bool(parts.hostname)
        _ = parts.port  # raises ValueError for a port that is not a number
    except ValueError:
        valid = False
    if not valid:
        raise ConfigError("SLACK_WEBHOOK_URL: expected an http(s) URL such as https://hooks.slack.com/services/...")
    return Secret(raw)


def _topic(env: Env, name: str, default: str) -> str:
    value = env.string(name, default)
    if not _TOPIC_NAME.fullmatch(value) or value in (".", ".."):
        raise ConfigError(f"{name}={value!r}: expected a topic name of letters, digits, '.', '_' or '-'")
    return value


def _name(env: Env, name: str, default: str) -> str:
    value = env.string(name, default)
    if len(value) > 255:
        raise ConfigError(f"{name}: expected at most 255 characters")
    return value


class _Parser(argparse.ArgumentParser):
    """argparse that reports a bad option as a ConfigError (one line) instead of usage text and exit."""

    def error(self, message: str) -> NoReturn:
        raise ConfigError(f"{message} (usage: {SERVICE} [--help]; settings come from the environment)")


def parse_args(argv: Sequence[str]) -> None:
    """No options besides --help: an unknown one is a ConfigError rather than silently ignored."""
    _Parser(
        prog=SERVICE,
        description="Consume GPU temperature readings from Kafka and alert Slack above a threshold. Configured by"
        " environment variables (see the README); a .env file in the working directory is read too.",
    ).parse_args(list(argv))
