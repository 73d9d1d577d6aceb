"""Typed settings from the environment, with one clear error per bad variable.

Each service builds a frozen settings object from an `Env` at start-up; any
bad value raises ConfigError naming the variable and the expected form, which
the entry point prints as one line before exiting with code 2.
"""

from __future__ import annotations

import ipaddress
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
# The longest duration any setting may take unless its reader says otherwise: librdkafka's ceiling for its
# millisecond settings (2^31 - 1 ms, about 24.8 days), far below what overflows a timer or a datetime.
MAX_DURATION = (2**31 - 1) / 1000
_TRUE = ("true", "1", "yes", "on")
_FALSE = ("false", "0", "no", "off")
_HOST_LABEL = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)")

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
    unit: str  # what the number measures ("°C", "ms", "duration"); "" when it is no measure
    help: str
    accepts: str = ""  # what a value may be, as a ConfigError says it ("an integer from 1 to 1,000,000")


class Env:
    """Reads variables from a mapping, converting and checking each one.

    Every read records a SettingDoc (name, default, unit, `help=`), in the order
    of reading: `docs` is the service's list of settings, for `--help` and docs.
    """

    def __init__(self, values: Mapping[str, str]) -> None:
        self._values = values
        self.docs: dict[str, SettingDoc] = {}

    def document(self, name: str, default: object, help: str, unit: str = "", accepts: str = "") -> None:
        """Record what a setting is (the typed readers below call this; call it for settings read by hand)."""
        self.docs.setdefault(name, SettingDoc(name, _default_text(default), unit, help, accepts))

    def is_set(self, name: str) -> bool:
        """Whether the variable is set at all, even to an empty value (which `raw` and the readers treat as unset)."""
        return self._values.get(name) is not None

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
        expected = _range_text("an integer", minimum, maximum)
        self.document(name, default, help, unit, expected)
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
        exclusive_maximum: bool = False,
        help: str = "",
        unit: str = "",
    ) -> float:
        expected = _range_text("a number", minimum, maximum, exclusive_minimum, exclusive_maximum)
        self.document(name, default, help, unit, expected)
        value = self._get(name, default, float, expected)
        too_low = minimum is not None and (value <= minimum if exclusive_minimum else value < minimum)
        too_high = maximum is not None and (value >= maximum if exclusive_maximum else value > maximum)
        if not math.isfinite(value) or too_low or too_high:
            raise ConfigError(f"{name}={self.raw(name)!r}: expected {expected}")
        return value

    def duration(
        self, name: str, default: float, *, minimum: float = 0.0, maximum: float = MAX_DURATION, help: str = ""
    ) -> float:
        """Seconds, from a Go-style duration such as `5m` or `30s`, within [minimum, maximum]."""
        expected = (
            f"a duration such as 30s, 5m or 1h, from {format_duration(minimum)} to {format_duration(maximum)}"
        )
        self.document(name, format_duration(default), help, "duration", expected)
        value = self._get(name, default, parse_duration, expected)
        if not math.isfinite(value) or not minimum <= value <= maximum:
            raise ConfigError(f"{name}={self.raw(name)!r}: expected {expected}")
        return value

    def boolean(self, name: str, default: bool, *, help: str = "") -> bool:
        """`true`/`false` (also 1/0, yes/no, on/off, any case)."""
        self.document(name, "true" if default else "false", help, accepts="true or false")
        raw = self.raw(name)
        if raw is None:
            return default
        if raw.lower() in _TRUE:
            return True
        if raw.lower() in _FALSE:
            return False
        raise ConfigError(f"{name}={raw!r}: expected true or false")

    def bind_host(self, name: str, default: str, *, help: str = "") -> str:
        """An address to listen on: an IPv4 or IPv6 address, or a host name."""
        self.document(name, default, help, accepts="an IP address or a host name")
        raw = self.raw(name)
        if raw is None:
            return default
        if not is_host(raw):
            raise ConfigError(f"{name}={raw!r}: expected an IP address (127.0.0.1, 0.0.0.0, ::1) or a host name")
        return raw

    def choice(self, name: str, default: str, choices: tuple[str, ...], *, help: str = "") -> str:
        self.document(name, default, help, accepts=f"one of {', '.join(choices)}")
        raw = self.raw(name)
        if raw is None:
            return default
        if raw.lower() not in choices:
            raise ConfigError(f"{name}={raw!r}: expected one of {', '.join(choices)}")
        return raw.lower()

    def broker_list(self, name: str, default: str, *, help: str = "") -> str:
        """A comma-separated list of host:port, normalised (spaces dropped)."""
        self.document(name, default, help, accepts="a comma-separated list of host:port")
        raw = self._values.get(name)
        text = default if raw is None else raw
        brokers = [b.strip() for b in text.split(",") if b.strip()]
        if not brokers:
            raise ConfigError(f"{name}={text!r}: expected a comma-separated list of host:port")
        for broker in brokers:
            host, sep, port = broker.rpartition(":")
            if not sep or not host or not (port.isascii() and port.isdigit()) or not 0 < int(port) < 65536:
                raise ConfigError(f"{name}={text!r}: expected a comma-separated list of host:port")
        return ",".join(brokers)


def is_host(text: str) -> bool:
    """An IP address literal, or a DNS name whose labels are 1-63 letters, digits or hyphens (253 at most)."""
    try:
        ipaddress.ip_address(text)
    except ValueError:
        pass
    else:
        return True
    labels = text.removesuffix(".").split(".")
    return len(text) <= 253 and all(_HOST_LABEL.fullmatch(label) for label in labels)


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


def _range_text(
    kind: str, minimum: float | None, maximum: float | None, exclusive: bool = False, exclusive_max: bool = False
) -> str:
    low = None if minimum is None else f"{'>' if exclusive else '>='} {_number_text(minimum)}"
    high = None if maximum is None else f"{'<' if exclusive_max else '<='} {_number_text(maximum)}"
    if low is not None and high is not None:
        if not exclusive and not exclusive_max:
            return f"{kind} from {_number_text(minimum)} to {_number_text(maximum)}"
        return f"{kind} {low} and {high}"
    if low is not None or high is not None:
        return f"{kind} {low or high}"
    return kind


def _number_text(value: float | None) -> str:
    """Whole numbers in full (65535, not 6.5535e+04), others as %g."""
    if isinstance(value, int):
        return str(value)
    if value is not None and float(value).is_integer() and abs(value) < 1e21:
        return str(int(value))
    return f"{value:g}"


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
    metrics_host: str  # the address /metrics, /healthz and /readyz listen on
    metrics_port: int
    startup_attempts: int
    startup_backoff_max: float
    topic_replication_factor: int | None  # None: the cluster's default


DEFAULT_METRICS_HOST = "127.0.0.1"  # loopback outside containers; the images set METRICS_HOST=0.0.0.0
MAX_STARTUP_ATTEMPTS = 10_000


def load_common(env: Env, *, default_metrics_port: int) -> CommonSettings:
    brokers = env.broker_list(
        "REDPANDA_BROKERS", "localhost:9092", help="the Kafka or Redpanda cluster: comma-separated bootstrap host:port"
    )
    rf = env.integer(
        "TOPIC_REPLICATION_FACTOR", 0, minimum=0, maximum=16,
        help="replication factor of the topics this service creates; 0 = the cluster's default (Redpanda accepts"
        " only odd factors)",
    )
    return CommonSettings(
        brokers=brokers,
        log_level=env.choice("LOG_LEVEL", "info", LOG_LEVELS, help="the least level of the lines logged"),
        log_format=env.choice(
            "LOG_FORMAT", "text", LOG_FORMATS, help="text for people; json for one JSON object per line (log shippers)"
        ),
        metrics_host=env.bind_host(
            "METRICS_HOST",
            DEFAULT_METRICS_HOST,
            help="address /metrics, /healthz and /readyz listen on; 0.0.0.0 (all interfaces) inside containers",
        ),
        metrics_port=env.integer(
            "METRICS_PORT", default_metrics_port, minimum=0, maximum=65535,
            help="port of /metrics, /healthz and /readyz; 0 = any free port (logged)",
        ),
        startup_attempts=env.integer(
            "STARTUP_ATTEMPTS", 10, minimum=1, maximum=MAX_STARTUP_ATTEMPTS,
            help="attempts to reach the cluster at start-up (one log line each) before exiting 1",
        ),
        startup_backoff_max=env.duration(
            "STARTUP_BACKOFF_MAX", 10.0, minimum=0.01, maximum=3600.0,
            help="longest wait between two start-up attempts (the wait doubles from 0.5s)",
        ),
        topic_replication_factor=rf or None,
    )
