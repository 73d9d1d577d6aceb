"""Configuration parsing: good values convert, bad ones name the variable and the expected form."""

from __future__ import annotations

import contextlib
import math
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.config import ConfigError, Env, load_environment, parse_duration


@given(st.integers(0, 10_000), st.sampled_from(["ms", "s", "m", "h"]))
def test_duration_units(amount: int, unit: str) -> None:
    """Each Go duration unit scales to seconds."""
    scale = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}[unit]
    assert parse_duration(f"{amount}{unit}") == pytest.approx(amount * scale)


def test_duration_compound_and_bare() -> None:
    """Compound durations add up and a bare number means seconds."""
    assert parse_duration("1h30m") == 5400
    assert parse_duration("1m30.5s") == 90.5
    assert parse_duration("45") == 45


@pytest.mark.parametrize("text", ["", "5 minutes", "m5", "5x", "-5m"])
def test_duration_rejects_garbage(text: str) -> None:
    """Anything that is not a duration is refused, not read as zero."""
    with pytest.raises(ValueError, match="not a duration"):
        parse_duration(text)


def test_integer_range_error_names_variable() -> None:
    """An out-of-range integer names the variable, the value and the allowed range."""
    env = Env({"NUM_DEVICES": "0"})
    with pytest.raises(ConfigError, match=r"NUM_DEVICES='?0'?: expected an integer >= 1"):
        env.integer("NUM_DEVICES", 5, minimum=1)


def test_integer_malformed() -> None:
    """A non-numeric integer is reported with its text."""
    with pytest.raises(ConfigError, match=r"NUM_DEVICES='five': expected an integer"):
        Env({"NUM_DEVICES": "five"}).integer("NUM_DEVICES", 5, minimum=1)


@pytest.mark.parametrize("raw", ["1.5", "-0.1", "nan", "inf", "abc"])
def test_probability_bounds(raw: str) -> None:
    """Probabilities outside [0, 1], NaN and infinity are refused."""
    with pytest.raises(ConfigError, match="ABNORMAL_PROBABILITY"):
        Env({"ABNORMAL_PROBABILITY": raw}).number("ABNORMAL_PROBABILITY", 0.05, minimum=0, maximum=1)


def test_exclusive_minimum() -> None:
    """A threshold that must be > 0 refuses 0 but takes a small positive value."""
    with pytest.raises(ConfigError, match="> 0"):
        Env({"T": "0"}).number("T", 190.0, minimum=0, exclusive_minimum=True)
    assert Env({"T": "0.5"}).number("T", 190.0, minimum=0, exclusive_minimum=True) == 0.5


def test_defaults_apply_when_unset_or_blank() -> None:
    """An unset or blank variable takes the default."""
    env = Env({"B": "  "})
    assert env.integer("A", 7) == 7
    assert env.integer("B", 8) == 8


@pytest.mark.parametrize("raw", ["", " , ", "localhost", "host:port", "host:99999", ":9092"])
def test_broker_list_rejects(raw: str) -> None:
    """Empty or malformed broker lists stop start-up."""
    with pytest.raises(ConfigError, match="REDPANDA_BROKERS"):
        Env({"REDPANDA_BROKERS": raw}).broker_list("REDPANDA_BROKERS", "localhost:9092")


def test_broker_list_normalises() -> None:
    """Spaces around entries are dropped."""
    env = Env({"REDPANDA_BROKERS": " a:1 , b:2 "})
    assert env.broker_list("REDPANDA_BROKERS", "x:1") == "a:1,b:2"


def test_choice_is_case_insensitive_and_strict() -> None:
    """Enumerated options accept any case and refuse unknown values with the list of choices."""
    assert Env({"LOG_FORMAT": "JSON"}).choice("LOG_FORMAT", "text", ("text", "json")) == "json"
    with pytest.raises(ConfigError, match="expected one of text, json"):
        Env({"LOG_FORMAT": "xml"}).choice("LOG_FORMAT", "text", ("text", "json"))


def test_required_variable() -> None:
    """A required variable that is missing says what it should hold."""
    with pytest.raises(ConfigError, match="SLACK_WEBHOOK_URL is not set"):
        Env({}).required("SLACK_WEBHOOK_URL", "a Slack incoming-webhook URL")


def test_dotenv_file_is_read_and_environment_wins(tmp_path: Path) -> None:
    """Values from .env fill in; the real environment overrides them."""
    dotenv = tmp_path / ".env"
    dotenv.write_text("NUM_DEVICES=9\nREDPANDA_TOPIC=from-file\n")
    merged = load_environment(dotenv, base={"REDPANDA_TOPIC": "from-env"})
    assert merged["NUM_DEVICES"] == "9"
    assert merged["REDPANDA_TOPIC"] == "from-env"


def test_common_settings_defaults_and_overrides() -> None:
    """Both services read brokers, logging, metrics port, start-up retries and replication the same way."""
    from shared.config import load_common  # noqa: PLC0415

    defaults = load_common(Env({}), default_metrics_port=9100)
    assert defaults.brokers == "localhost:9092"
    assert (defaults.log_level, defaults.log_format, defaults.metrics_port) == ("info", "text", 9100)
    assert defaults.topic_replication_factor is None
    custom = load_common(
        Env({"TOPIC_REPLICATION_FACTOR": "3", "METRICS_PORT": "0", "STARTUP_BACKOFF_MAX": "2s"}),
        default_metrics_port=9101,
    )
    assert (custom.topic_replication_factor, custom.metrics_port, custom.startup_backoff_max) == (3, 0, 2.0)
    with pytest.raises(ConfigError, match="STARTUP_ATTEMPTS"):
        load_common(Env({"STARTUP_ATTEMPTS": "0"}), default_metrics_port=9100)


@pytest.mark.parametrize("raw", ["nan", "NaN", "inf", "-inf", "infinity", "1e400"])
def test_durations_must_be_finite(raw: str) -> None:
    """A NaN or infinite duration (never-firing commit timer, cooldown that never holds) is refused."""
    with pytest.raises(ConfigError, match="COMMIT_INTERVAL"):
        Env({"COMMIT_INTERVAL": raw}).duration("COMMIT_INTERVAL", 1.0)


@pytest.mark.parametrize("raw", ["1e306", "1e10", "596h32m", "9999999999h"])
def test_durations_have_an_upper_bound(raw: str) -> None:
    """A duration beyond the reader's maximum (by default librdkafka's 2^31 - 1 ms) is refused, not overflowed later."""
    with pytest.raises(ConfigError, match=r"ALERT_COOLDOWN='.*': expected a duration .* to 596h31m23.647s"):
        Env({"ALERT_COOLDOWN": raw}).duration("ALERT_COOLDOWN", 300.0)
    with pytest.raises(ConfigError, match=r"expected a duration such as 30s, 5m or 1h, from 50ms to 5m"):
        Env({"SLACK_TIMEOUT": "5m1s"}).duration("SLACK_TIMEOUT", 10.0, minimum=0.05, maximum=300.0)
    assert Env({"SLACK_TIMEOUT": "5m"}).duration("SLACK_TIMEOUT", 10.0, minimum=0.05, maximum=300.0) == 300.0


def test_exclusive_maximum() -> None:
    """A threshold that must be below a reading's ceiling refuses the ceiling itself."""
    with pytest.raises(ConfigError, match="> 0 and < 10000"):
        Env({"T": "10000"}).number("T", 1.0, minimum=0, maximum=10_000, exclusive_minimum=True, exclusive_maximum=True)
    assert Env({"T": "9999.5"}).number("T", 1.0, minimum=0, maximum=10_000, exclusive_maximum=True) == 9999.5


@pytest.mark.parametrize(("raw", "value"), [("true", True), ("TRUE", True), ("1", True), ("yes", True),
                                            ("false", False), ("0", False), ("Off", False), ("", False)])
def test_boolean(raw: str, value: bool) -> None:
    """Booleans take the usual spellings in any case; unset or blank is the default."""
    assert Env({"B": raw}).boolean("B", False) is value


def test_boolean_refuses_anything_else() -> None:
    """`maybe` is not a boolean: one line naming the variable."""
    with pytest.raises(ConfigError, match="SLACK_ALLOW_HTTP='maybe': expected true or false"):
        Env({"SLACK_ALLOW_HTTP": "maybe"}).boolean("SLACK_ALLOW_HTTP", False)


@pytest.mark.parametrize("host", ["127.0.0.1", "0.0.0.0", "::", "::1", "localhost", "metrics.internal"])
def test_bind_host_accepts_addresses_and_names(host: str) -> None:
    """METRICS_HOST takes an IPv4 or IPv6 address or a host name."""
    assert Env({"METRICS_HOST": host}).bind_host("METRICS_HOST", "127.0.0.1") == host


@pytest.mark.parametrize("host", ["127.0.0.1:9100", "http://0.0.0.0", "a b", "-x", "a" * 64, "x\r\nInjected: 1"])
def test_bind_host_refuses_anything_else(host: str) -> None:
    """A port, a URL, spaces or a 64-character label is not an address to listen on."""
    with pytest.raises(ConfigError, match="METRICS_HOST="):
        Env({"METRICS_HOST": host}).bind_host("METRICS_HOST", "127.0.0.1")


def test_metrics_host_defaults_to_loopback() -> None:
    """Outside containers the health endpoints listen on 127.0.0.1 unless METRICS_HOST says otherwise."""
    from shared.config import load_common  # noqa: PLC0415

    assert load_common(Env({}), default_metrics_port=9100).metrics_host == "127.0.0.1"
    assert load_common(Env({"METRICS_HOST": "0.0.0.0"}), default_metrics_port=9100).metrics_host == "0.0.0.0"


def test_unicode_digits_in_a_port_are_a_config_error() -> None:
    """`host:²` (a digit to str.isdigit, not to int) is refused as a ConfigError, not a bare ValueError."""
    with pytest.raises(ConfigError, match="REDPANDA_BROKERS"):
        Env({"REDPANDA_BROKERS": "h:²"}).broker_list("REDPANDA_BROKERS", "localhost:9092")


numberish = st.one_of(
    st.text(),
    st.text(alphabet="0123456789.-+eE_ nainfhmsuµ:,", max_size=30),
    st.floats().map(str),
    st.integers().map(str),
    st.builds(lambda n, u: f"{n}{u}", st.floats(min_value=0), st.sampled_from(["ns", "us", "ms", "s", "m", "h"])),
)


@given(raw=numberish, low=st.integers(-100, 100), span=st.integers(0, 10**6))
def test_integer_reader_gives_a_value_in_bounds_or_a_config_error(raw: str, low: int, span: int) -> None:
    """Whatever the text, Env.integer returns a value within [minimum, maximum] or raises ConfigError."""
    try:
        value = Env({"X": raw}).integer("X", low, minimum=low, maximum=low + span)
    except ConfigError:
        return
    assert low <= value <= low + span


@given(raw=numberish, low=st.floats(-1e6, 1e6), span=st.floats(0, 1e9))
def test_number_reader_gives_a_value_in_bounds_or_a_config_error(raw: str, low: float, span: float) -> None:
    """Whatever the text, Env.number returns a finite value within [minimum, maximum] or raises ConfigError."""
    try:
        value = Env({"X": raw}).number("X", low, minimum=low, maximum=low + span)
    except ConfigError:
        return
    assert math.isfinite(value)
    assert low <= value <= low + span


@given(raw=numberish, low=st.floats(0, 10), span=st.floats(0, 1e7))
def test_duration_reader_gives_a_value_in_bounds_or_a_config_error(raw: str, low: float, span: float) -> None:
    """Whatever the text, Env.duration returns finite seconds within [minimum, maximum] or raises ConfigError."""
    try:
        value = Env({"X": raw}).duration("X", low, minimum=low, maximum=low + span)
    except ConfigError:
        return
    assert math.isfinite(value)
    assert low <= value <= low + span


@given(raw=st.text())
def test_other_readers_give_a_value_or_a_config_error(raw: str) -> None:
    """Whatever the text, the choice, boolean, host and broker-list readers return a value or raise ConfigError."""
    env = Env({"X": raw})
    for read in (
        lambda: env.choice("X", "text", ("text", "json")),
        lambda: env.boolean("X", False),
        lambda: env.bind_host("X", "127.0.0.1"),
        lambda: env.broker_list("X", "localhost:9092"),
        lambda: env.string("X", "d"),
    ):
        with contextlib.suppress(ConfigError):
            read()
