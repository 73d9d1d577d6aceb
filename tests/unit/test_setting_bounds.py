"""Every numeric setting of both services has an upper bound; no text fails a loader other than by ConfigError."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from alerter.settings import load_settings as load_alerter
from publisher.settings import load_settings as load_publisher
from shared.config import ConfigError, Env, parse_duration

URL = "https://hooks.slack.com/services/T000/B000/BOUNDSTOKEN"
SERVICES: dict[str, tuple[Callable[[Env], Any], dict[str, str]]] = {
    "alerter": (load_alerter, {"SLACK_WEBHOOK_URL": URL}),
    "publisher": (load_publisher, {}),
}
NOT_DOCUMENTED_BY_DEFAULT = {"publisher": ["SIMULATOR_SEED"]}  # read only when set


def _numeric(default: str) -> bool:
    try:
        parse_duration(default)
    except ValueError:
        return False
    return True


def numeric_settings(service: str) -> list[str]:
    load, base = SERVICES[service]
    env = Env(base)
    load(env)
    names = [doc.name for doc in env.docs.values() if doc.default and _numeric(doc.default)]
    return names + NOT_DOCUMENTED_BY_DEFAULT.get(service, [])


CASES = [(service, name) for service in SERVICES for name in numeric_settings(service)]


def test_the_numeric_settings_are_found() -> None:
    """The list below is read from the loaders themselves, so a new numeric setting is checked without a test edit."""
    names = {name for _, name in CASES}
    assert {"ALERT_COOLDOWN", "SLACK_TIMEOUT", "TEMPERATURE_THRESHOLD", "NUM_DEVICES", "FLUSH_TIMEOUT"} <= names
    assert {"METRICS_PORT", "STARTUP_ATTEMPTS", "STARTUP_BACKOFF_MAX", "MAX_TICKS", "SIMULATOR_SEED"} <= names


@pytest.mark.parametrize(("service", "name"), CASES)
def test_every_numeric_setting_has_an_upper_bound(service: str, name: str) -> None:
    """A huge value (10^50 as an integer, 1e300 as a number or duration) of any numeric setting is a ConfigError."""
    load, base = SERVICES[service]
    for huge in ("1" + "0" * 50, "1e300", "1e300h"):
        with pytest.raises(ConfigError, match=f"^{name}="):
            load(Env({**base, name: huge}))


text_values = st.one_of(
    st.text(max_size=40),
    st.floats().map(str),
    st.integers().map(str),
    st.builds(lambda n, u: f"{n}{u}", st.floats(min_value=0), st.sampled_from(["ms", "s", "m", "h"])),
)


@settings(max_examples=300, deadline=None)
@given(case=st.sampled_from(CASES), value=text_values)
def test_any_text_loads_within_bounds_or_is_a_config_error(case: tuple[str, str], value: str) -> None:
    """Any text in any numeric setting either loads (every number finite and bounded) or raises ConfigError."""
    service, name = case
    load, base = SERVICES[service]
    try:
        loaded = load(Env({**base, name: value}))
    except ConfigError:
        return
    for number in _numbers(loaded):
        assert math.isfinite(number)
        assert abs(number) <= 2**128


def _numbers(obj: Any) -> list[float]:
    found: list[float] = []
    for field in dataclasses.fields(obj):
        value = getattr(obj, field.name)
        if dataclasses.is_dataclass(value):
            found += _numbers(value)
        elif isinstance(value, int | float) and not isinstance(value, bool):
            found.append(float(value))
    return found
