"""Alerter settings: the original's defaults, one clear error per bad value, exit code 2, a hidden webhook URL."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from alerter.settings import load_settings
from shared.config import ConfigError, Env

URL = "https://hooks.slack.com/services/T000/B000/SECRETTOKEN"


def test_defaults_are_the_originals() -> None:
    """With only the webhook given, topic, group, threshold, cooldown, channel and offsets are the original's."""
    settings = load_settings(Env({"SLACK_WEBHOOK_URL": URL}))
    assert settings.source_topic == "gpu-temperature"
    assert settings.consumer_group == "gpu-temp-alert-group"
    assert settings.offset_reset == "latest"
    assert settings.threshold == 190.0
    assert settings.cooldown == 300.0
    assert settings.slack_channel == "#alerts"
    assert settings.alert_topic == "gpu-temperature-alerts"
    assert settings.dlq_topic == "gpu-temperature-dlq"
    assert settings.common.brokers == "localhost:9092"
    assert settings.common.metrics_port == 8702


def test_values_are_read_and_converted() -> None:
    """Durations accept Go syntax and numbers parse; the webhook URL is kept but never shown."""
    settings = load_settings(
        Env(
            {
                "SLACK_WEBHOOK_URL": URL,
                "ALERT_COOLDOWN": "1m30s",
                "TEMPERATURE_THRESHOLD": "150.5",
                "CONSUMER_OFFSET_RESET": "EARLIEST",
                "MAX_PENDING_ALERTS": "10",
            }
        )
    )
    assert settings.cooldown == 90.0
    assert settings.threshold == 150.5
    assert settings.offset_reset == "earliest"
    assert settings.max_pending_alerts == 10
    assert settings.webhook_url.reveal() == URL
    assert "SECRETTOKEN" not in repr(settings)


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("TEMPERATURE_THRESHOLD", "0", "TEMPERATURE_THRESHOLD='0': expected a number > 0"),
        ("TEMPERATURE_THRESHOLD", "hot", "TEMPERATURE_THRESHOLD='hot'"),
        ("TEMPERATURE_THRESHOLD", "nan", "TEMPERATURE_THRESHOLD='nan'"),
        ("ALERT_COOLDOWN", "5 minutes", "ALERT_COOLDOWN='5 minutes': expected a duration"),
        ("CONSUMER_OFFSET_RESET", "newest", "CONSUMER_OFFSET_RESET='newest': expected one of latest, earliest"),
        ("MAX_PENDING_ALERTS", "0", "MAX_PENDING_ALERTS=0: expected an integer >= 1"),
        ("SOURCE_TOPIC", "bad topic!", "SOURCE_TOPIC='bad topic!': expected a topic name"),
        ("REDPANDA_BROKERS", "nohostport", "REDPANDA_BROKERS='nohostport'"),
        ("METRICS_PORT", "70000", "METRICS_PORT=70000"),
    ],
)
def test_bad_values_name_the_variable(name: str, value: str, message: str) -> None:
    """Each bad value raises ConfigError naming the variable, the value and what was expected."""
    with pytest.raises(ConfigError) as error:
        load_settings(Env({"SLACK_WEBHOOK_URL": URL, name: value}))
    assert message in str(error.value)


@pytest.mark.parametrize(
    "url", ["", "   ", "hooks.slack.com/services/x", "ftp://h/x", "http:///nohost", "http://h:port/x"]
)
def test_webhook_url_is_required_and_checked_without_echoing_it(url: str) -> None:
    """A missing or malformed SLACK_WEBHOOK_URL is an error that names the variable but not the secret value."""
    with pytest.raises(ConfigError, match="SLACK_WEBHOOK_URL") as error:
        load_settings(Env({"SLACK_WEBHOOK_URL": url}))
    if url.strip():
        assert url not in str(error.value)


def _alerter(env: dict[str, str], tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "TEMPERATURE_", "ALERT_"))}
    return subprocess.run(
        [sys.executable, "-m", "alerter", *args],
        env={**clean, **env},
        cwd=tmp_path,  # no .env here
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, "SLACK_WEBHOOK_URL is not set"),
        ({"SLACK_WEBHOOK_URL": URL, "TEMPERATURE_THRESHOLD": "-5"}, "TEMPERATURE_THRESHOLD='-5'"),
        ({"SLACK_WEBHOOK_URL": URL, "ALERT_COOLDOWN": "soon"}, "ALERT_COOLDOWN='soon'"),
        ({"SLACK_WEBHOOK_URL": "not a url"}, "SLACK_WEBHOOK_URL: expected an http(s) URL"),
    ],
)
def test_entry_point_exits_2_with_one_line(env: dict[str, str], expected: str, tmp_path: Path) -> None:
    """`python -m alerter` with a bad setting prints one line naming it and exits 2, no traceback."""
    result = _alerter(env, tmp_path)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert expected in lines[0]
    assert lines[0].startswith("gpu-temp-alert: configuration error:")


def test_dotenv_file_is_read_and_environment_wins(tmp_path: Path) -> None:
    """A .env in the working directory supplies settings; the process environment overrides it."""
    (tmp_path / ".env").write_text(f"SLACK_WEBHOOK_URL={URL}\nTEMPERATURE_THRESHOLD=-1\nALERT_COOLDOWN=bad\n")
    result = _alerter({"TEMPERATURE_THRESHOLD": "150"}, tmp_path)
    assert result.returncode == 2
    assert "ALERT_COOLDOWN='bad'" in result.stderr
    assert "TEMPERATURE_THRESHOLD" not in result.stderr


def _runnable_env() -> dict[str, str]:
    """Valid settings with brokers nobody listens on: were options ignored, the alerter would exit 1 soon."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return {
        "SLACK_WEBHOOK_URL": URL,
        "REDPANDA_BROKERS": f"127.0.0.1:{port}",
        "STARTUP_ATTEMPTS": "1",
        "METRICS_PORT": "0",
    }


def test_unknown_option_exits_2_with_one_line(tmp_path: Path) -> None:
    """`python -m alerter --bogus` is refused with one line naming the option and the usage, exit code 2."""
    result = _alerter(_runnable_env(), tmp_path, "--bogus")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "gpu-temp-alert: configuration error: unrecognized arguments: --bogus "
        "(usage: gpu-temp-alert [--help]; settings come from the environment)"
    ]


def test_help_prints_usage_and_exits_0(tmp_path: Path) -> None:
    """`--help` describes the program and exits 0 without starting, even with no settings at all."""
    result = _alerter({}, tmp_path, "--help")
    assert result.returncode == 0
    assert result.stdout.startswith("usage: gpu-temp-alert [-h]")
    assert "environment variables" in result.stdout
    assert result.stderr == ""
