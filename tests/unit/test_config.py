"""Configuration parsing: good values convert, bad ones name the variable and the expected form."""

from __future__ import annotations

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
