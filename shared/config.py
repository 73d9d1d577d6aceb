"""Typed settings from the environment, with one clear error per bad variable.

Each service builds a frozen settings object from an `Env` at start-up; any
bad value raises ConfigError naming the variable and the expected form, which
the entry point prints as one line before exiting with code 2.
"""

from __future__ import annotations

import math
import os
import re
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn, TypeVar

from dotenv import dotenv_values

from shared.logs import LOG_FORMATS, LOG_LEVELS

EXIT_CONFIG_ERROR = 2

T = TypeVar("T")


class ConfigError(ValueError):
    """A configuration value that cannot be used; its message names the variable."""


def load_environment(dotenv_path: str | Path = ".env", base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The process environment over the values of a `.env` file (the environment wins, as in the original)."""
    merged: dict[str, str] = {}
    path = Path(dotenv_path)
    if path.is_file():
        merged.update({k: v for k, v in dotenv_values(path).items() if v is not None})
    merged.update(os.environ if base is None else base)
    return merged


_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_DURATION_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(text: str) -> float:
    """Seconds from a Go-style duration (`5m`, `30s`, `1h30m`, `250ms`); a bare number means seconds."""
    text = text.strip()
    try:
        return float(text)
    except ValueError:
        pass
    pos, total = 0, 0.0
    while pos < len(text):
        match = _DURATION_PART.match(text, pos)
        if not match:
            raise ValueError(f"not a duration: {text!r}")
        total += float(match.group(1)) * _DURATION_UNITS[match.group(2)]
        pos = match.end()
    if pos == 0:
        raise ValueError(f"not a duration: {text!r}")
    return total


@dataclass(frozen=True)
class SettingDoc:
    """What `--help` and the README say about one variable, recorded where the code reads it (so it cannot drift)."""

    name: str
    default: str  # as a user would write it; "" when there is none
    unit: str  # "°C", "duration", "seconds"...; "" when the value has none
    help: str


class Env:
    """Reads variables from a mapping, converting and checking each one.

    Every read records a SettingDoc (name, default, unit, `help=`), in the order
    of reading: `docs` is the service's list of settings, for `--help` and docs.
    """

    def __init__(self, values: Mapping[str, str]) -> None:
        self._values = values
        self.docs: dict[str, SettingDoc] = {}

    def document(self, name: str, default: object, help: str, unit: str = "") -> None:
        """Record what a setting is (the typed readers below call this; call it for settings read by hand)."""
        self.docs.setdefault(name, SettingDoc(name, _default_text(default), unit, help))

    def raw(self, name: str) -> str | None:
        value = self._values.get(name)
        return None if value is None or value.strip() == "" else value.strip()

    def _get(self, name: str, default: T, parse: Callable[[str], T], expected: str) -> T:
        raw = self.raw(name)
        if raw is None:
            return default
        try:
            return parse(raw)
        except (ValueError, OverflowError):
            raise ConfigError(f"{name}={raw!r}: expected {expected}") from None

    def string(self, name: str, default: str, *, help: str = "") -> str:
        self.document(name, default, help)
        return self._get(name, default, str, "a string")

    def required(self, name: str, what: str, *, help: str = "") -> str:
        self.document(name, "", help or what)
        raw = self.raw(name)
        if raw is None:
            raise ConfigError(f"{name} is not set: expected {what}")
        return raw

    def integer(
        self,
        name: str,
        default: int,
        *,
        minimum: int | None = None,
        maximum: int | None = None,
        help: str = "",
        unit: str = "",
    ) -> int:
        self.document(name, default, help, unit)
        expected = _range_text("an integer", minimum, maximum)
        value = self._get(name, default, int, expected)
        if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
            raise ConfigError(f"{name}={value!r}: expected {expected}")
        return value

    def number(
        self,
        name: str,
        default: float,
        *,
        minimum: float | None = None,
        maximum: float | None = None,
        exclusive_minimum: bool = False,
        help: str = "",
        unit: str = "",
    ) -> float:
        self.document(name, default, help, unit)
        expected = _range_text("a number", minimum, maximum, exclusive_minimum)
        value = self._get(name, default, float, expected)
        too_low = minimum is not None and (value <= minimum if exclusive_minimum else value < minimum)
        if not math.isfinite(value) or too_low or (maximum is not None and value > maximum):
            raise ConfigError(f"{name}={self.raw(name)!r}: expected {expected}")
        return value

    def duration(self, name: str, default: float, *, minimum: float = 0.0, help: str = "") -> float:
        """Seconds, from a Go-style duration such as `5m` or `30s`."""
        self.document(name, format_duration(default), help, "duration")
        expected = f"a duration such as 30s, 5m or 1h (at least {minimum:g}s)"
        value = self._get(name, default, parse_duration, expected)
        if not math.isfinite(value) or value < minimum:
            raise ConfigError(f"{name}={self.raw(name)!r}: expected {expected}")
        return value

    def choice(self, name: str, default: str, choices: tuple[str, ...], *, help: str = "") -> str:
        self.document(name, default, help, "|".join(choices))
        raw = self.raw(name)
        if raw is None:
            return default
        if raw.lower() not in choices:
            raise ConfigError(f"{name}={raw!r}: expected one of {', '.join(choices)}")
        return raw.lower()

    def broker_list(self, name: str, default: str, *, help: str = "") -> str:
        """A comma-separated list of host:port, normalised (spaces dropped)."""
        self.document(name, default, help, "host:port,...")
        raw = self._values.get(name)
        text = default if raw is None else raw
        brokers = [b.strip() for b in text.split(",") if b.strip()]
        if not brokers:
            raise ConfigError(f"{name}={text!r}: expected a comma-separated list of host:port")
        for broker in brokers:
            host, sep, port = broker.rpartition(":")
            if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
                raise ConfigError(f"{name}={text!r}: expected a comma-separated list of host:port")
        return ",".join(brokers)


def format_duration(seconds: float) -> str:
    """The shortest Go-style text for a duration of whole units (`5m`, `1h30m`, `250ms`), for defaults in docs."""
    if seconds == 0:
        return "0"
    if seconds < 1:
        return f"{seconds * 1000:g}ms"
    text, rest = "", seconds
    for unit, size in (("h", 3600), ("m", 60)):
        whole = int(rest // size)
        if whole:
            text, rest = text + f"{whole}{unit}", rest - whole * size
    return text + (f"{rest:g}s" if rest else "")


def _default_text(default: object) -> str:
    if default is None:
        return ""
    if isinstance(default, float) and default.is_integer():
        return str(int(default))
    return str(default)


def _range_text(kind: str, minimum: float | None, maximum: float | None, exclusive: bool = False) -> str:
    if minimum is not None and maximum is not None:
        return f"{kind} from {minimum:g} to {maximum:g}"
    if minimum is not None:
        return f"{kind} {'>' if exclusive else '>='} {minimum:g}"
    if maximum is not None:
        return f"{kind} <= {maximum:g}"
    return kind


def exit_on_config_error(service: str, error: ConfigError) -> NoReturn:
    """One line on stderr and exit code 2: a bad setting is the operator's to fix, not a crash."""
    print(f"{service}: configuration error: {error}", file=sys.stderr)  # noqa: T201
    raise SystemExit(EXIT_CONFIG_ERROR)


@dataclass(frozen=True)
class CommonSettings:
    """Settings both services read under the same names."""

    brokers: str
    log_level: str
    log_format: str
    metrics_port: int
    startup_attempts: int
    startup_backoff_max: float
    topic_replication_factor: int | None  # None: the cluster's default


def load_common(env: Env, *, default_metrics_port: int) -> CommonSettings:
    rf = env.integer("TOPIC_REPLICATION_FACTOR", 0, minimum=0, maximum=16)
    return CommonSettings(
        brokers=env.broker_list("REDPANDA_BROKERS", "localhost:9092"),
        log_level=env.choice("LOG_LEVEL", "info", LOG_LEVELS),
        log_format=env.choice("LOG_FORMAT", "text", LOG_FORMATS),
        metrics_port=env.integer("METRICS_PORT", default_metrics_port, minimum=0, maximum=65535),
        startup_attempts=env.integer("STARTUP_ATTEMPTS", 10, minimum=1),
        startup_backoff_max=env.duration("STARTUP_BACKOFF_MAX", 10.0, minimum=0.01),
        topic_replication_factor=rf or None,
    )
