"""Alerter settings: the original's defaults, one clear error per bad value, exit code 2, a hidden webhook URL."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from alerter.settings import Secret, load_settings
from alerter.slack import alert_message, notice_message
from shared.config import ConfigError, Env
from tests.alerter_support import make_alert

URL = "https://hooks.slack.com/services/T000/B000/SECRETTOKEN"


def _revealed(secret: Secret | None) -> str:
    assert secret is not None
    return secret.reveal()


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


def test_an_empty_slack_channel_names_none() -> None:
    """SLACK_CHANNEL set but empty (or blank) leaves the channel out of every message, so the webhook's own channel
    is used, as the original's `omitempty`; unset, it is #alerts."""
    for empty in ("", "  "):
        settings = load_settings(Env({"SLACK_WEBHOOK_URL": URL, "SLACK_CHANNEL": empty}))
        assert settings.slack_channel == ""
        assert "channel" not in alert_message(make_alert(), settings.slack_channel)
        assert "channel" not in notice_message("started", settings.slack_channel)
    assert alert_message(make_alert(), load_settings(Env({"SLACK_WEBHOOK_URL": URL})).slack_channel)["channel"] == (
        "#alerts"
    )


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
    assert _revealed(settings.webhook_url) == URL
    assert "SECRETTOKEN" not in repr(settings)


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("TEMPERATURE_THRESHOLD", "0", "TEMPERATURE_THRESHOLD='0': expected a number > 0"),
        ("TEMPERATURE_THRESHOLD", "hot", "TEMPERATURE_THRESHOLD='hot'"),
        ("TEMPERATURE_THRESHOLD", "nan", "TEMPERATURE_THRESHOLD='nan'"),
        ("ALERT_COOLDOWN", "5 minutes", "ALERT_COOLDOWN='5 minutes': expected a duration"),
        ("CONSUMER_OFFSET_RESET", "newest", "CONSUMER_OFFSET_RESET='newest': expected one of latest, earliest"),
        ("MAX_PENDING_ALERTS", "0", "MAX_PENDING_ALERTS=0: expected an integer from 1 to 1000000"),
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
        ({"SLACK_WEBHOOK_URL_FILE": "/nonexistent/slack_webhook_url"}, "SLACK_WEBHOOK_URL_FILE='/nonexistent/"),
        ({"SLACK_WEBHOOK_URL": "http://hooks.slack.com/services/T/B/x"}, "plain http:// would send the secret"),
        ({"SLACK_WEBHOOK_URL": URL, "ALERT_COOLDOWN": "1e306"}, "ALERT_COOLDOWN='1e306'"),
        ({"SLACK_WEBHOOK_URL": URL, "METRICS_HOST": "0.0.0.0:9101"}, "METRICS_HOST='0.0.0.0:9101'"),
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
        "gpu-temp-alert: configuration error: unrecognized arguments: --bogus (usage: gpu-temp-alert [-h]; see --help)"
    ]


def test_help_prints_usage_and_exits_0(tmp_path: Path) -> None:
    """`--help` describes the program and exits 0 without starting, even with no settings at all."""
    result = _alerter({}, tmp_path, "--help")
    assert result.returncode == 0
    assert result.stdout.startswith("usage: gpu-temp-alert [-h]")
    assert "environment variables" in result.stdout
    assert result.stderr == ""


def test_webhook_url_from_a_file(tmp_path: Path) -> None:
    """SLACK_WEBHOOK_URL_FILE names a file holding the URL (a Docker or Kubernetes secret), trailing newline and all."""
    secret = tmp_path / "slack_webhook_url"
    secret.write_text(URL + "\n")
    settings = load_settings(Env({"SLACK_WEBHOOK_URL_FILE": str(secret)}))
    assert _revealed(settings.webhook_url) == URL
    assert "SECRETTOKEN" not in repr(settings)


def _file_error(tmp_path: Path, content: bytes | None, name: str = "url") -> str:
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(ConfigError) as error:
        load_settings(Env({"SLACK_WEBHOOK_URL_FILE": str(path)}))
    message = str(error.value)
    assert len(message.splitlines()) == 1
    assert message.startswith(f"SLACK_WEBHOOK_URL_FILE='{path}'") or message.startswith("SLACK_WEBHOOK_URL_FILE:")
    return message


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (None, "no such file"),
        (b"", "the file is empty"),
        (b"  \n\n", "the file is empty"),
        (b"\xff\xfe" + URL.encode(), "not UTF-8 text"),
        (f"{URL}\n{URL}\n".encode(), "expected the webhook URL alone on one line"),
        (b"x" * (64 * 1024 + 1), "larger than 64 KiB"),
    ],
)
def test_unusable_webhook_file_is_one_line_naming_it(tmp_path: Path, content: bytes | None, expected: str) -> None:
    """A missing, empty, non-UTF-8, multi-line or huge secret file is one ConfigError naming the variable and path."""
    assert expected in _file_error(tmp_path, content)


def test_unreadable_webhook_file_is_one_line(tmp_path: Path) -> None:
    """A directory, or a path through a regular file, cannot be read: one line saying so."""
    assert "not a regular file" in _file_error(tmp_path, None, name="")
    (tmp_path / "plain").write_text("x")
    assert "cannot read it (Not a directory)" in _file_error(tmp_path, None, name="plain/url")


def test_webhook_file_content_is_never_echoed(tmp_path: Path) -> None:
    """A file holding something that is not a webhook URL names the variable, never the content."""
    message = _file_error(tmp_path, b"hooks.slack.com/services/T0/B0/FILESECRET\n")
    assert "FILESECRET" not in message
    assert "expected an http(s) URL" in message


def test_webhook_url_and_file_both_set_is_an_error(tmp_path: Path) -> None:
    """Setting both is ambiguous: one line naming both variables."""
    secret = tmp_path / "url"
    secret.write_text(URL)
    with pytest.raises(ConfigError, match="SLACK_WEBHOOK_URL and SLACK_WEBHOOK_URL_FILE are both set"):
        load_settings(Env({"SLACK_WEBHOOK_URL": URL, "SLACK_WEBHOOK_URL_FILE": str(secret)}))


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:3001/services/stand-in",
        "http://127.9.9.9/x",
        "http://localhost:3001/x",
        "http://[::1]:3001/x",
        "https://hooks.slack.com/services/T0/B0/x",
    ],
)
def test_https_or_loopback_http_is_accepted(url: str) -> None:
    """https anywhere, and plain http to a loopback address (a local stand-in), need no extra setting."""
    assert _revealed(load_settings(Env({"SLACK_WEBHOOK_URL": url})).webhook_url) == url


@pytest.mark.parametrize("url", ["http://hooks.slack.com/services/T0/B0/x", "http://slack-stand-in:3001/x",
                                 "http://10.0.0.5/x"])
def test_plain_http_elsewhere_is_refused_unless_allowed(url: str) -> None:
    """A plain http:// webhook off loopback would send the secret in clear: refused unless SLACK_ALLOW_HTTP=true."""
    with pytest.raises(ConfigError, match="SLACK_WEBHOOK_URL: plain http:// would send the secret") as error:
        load_settings(Env({"SLACK_WEBHOOK_URL": url}))
    assert url not in str(error.value)
    allowed = load_settings(Env({"SLACK_WEBHOOK_URL": url, "SLACK_ALLOW_HTTP": "true"}))
    assert _revealed(allowed.webhook_url) == url


@pytest.mark.parametrize(
    "url",
    [
        "https://" + "a" * 64 + ".slack.com/services/x",
        "https://hooks..slack.com/x",
        "https://hooks.slack.com:0/x",
        "https://hooks.slack.com/services/x y",
        "https://hooks.slack.com/services/x\u202e",
        "https://" + "a." * 130 + "com/x",
    ],
)
def test_webhook_url_a_client_cannot_use_is_refused_at_start_up(url: str) -> None:
    """A 64-character host label, an empty label, port 0, spaces or control characters: a ConfigError at start-up
    (not an error escaping from the start-up notice), without echoing the URL."""
    with pytest.raises(ConfigError, match="SLACK_WEBHOOK_URL: expected an http") as error:
        load_settings(Env({"SLACK_WEBHOOK_URL": url}))
    assert url not in str(error.value)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("ALERT_COOLDOWN", "1e306"),
        ("ALERT_COOLDOWN", "169h"),
        ("SLACK_TIMEOUT", "1e10"),
        ("SLACK_TIMEOUT", "5m1s"),
        ("TEMPERATURE_THRESHOLD", "10000"),
        ("TEMPERATURE_THRESHOLD", "1e300"),
        ("MAX_CLOCK_SKEW", "25h"),
        ("MAX_PENDING_ALERTS", "1000001"),
        ("COMMIT_INTERVAL", "61m"),
        ("SHUTDOWN_TIMEOUT", "11m"),
        ("SLACK_BACKOFF_MAX", "2h"),
        ("STARTUP_ATTEMPTS", "10001"),
        ("CONSUMER_SESSION_TIMEOUT", "61m"),
    ],
)
def test_values_that_would_fail_later_are_refused_at_start_up(name: str, value: str) -> None:
    """A cooldown of 1e306 s (OverflowError on use), a Slack timeout of 1e10 s, a threshold no reading can exceed
    (readings carry at most 10,000 °C), and every other number past its bound: one ConfigError at start-up."""
    with pytest.raises(ConfigError, match=f"^{name}="):
        load_settings(Env({"SLACK_WEBHOOK_URL": URL, name: value}))


def test_highest_threshold_a_reading_can_exceed_is_accepted() -> None:
    """Just below the readings' ceiling is still a threshold some reading can cross."""
    assert load_settings(Env({"SLACK_WEBHOOK_URL": URL, "TEMPERATURE_THRESHOLD": "9999.99"})).threshold == 9999.99


def test_alertmanager_alone_is_a_receiver_and_one_receiver_is_required() -> None:
    """With ALERTMANAGER_URL set, SLACK_WEBHOOK_URL may be left out (no Slack receiver); with neither set, one
    ConfigError line names both ways to configure a receiver."""
    settings = load_settings(Env({"ALERTMANAGER_URL": "http://127.0.0.1:9093"}))
    assert settings.webhook_url is None
    assert settings.alertmanager.endpoint is not None
    assert settings.alertmanager.endpoint.shown == "http://127.0.0.1:9093/api/v2/alerts"
    both = load_settings(Env({"ALERTMANAGER_URL": "http://127.0.0.1:9093", "SLACK_WEBHOOK_URL": URL}))
    assert both.webhook_url is not None
    assert both.alertmanager.enabled
    with pytest.raises(ConfigError) as error:
        load_settings(Env({}))
    message = str(error.value)
    assert "SLACK_WEBHOOK_URL is not set" in message
    assert "ALERTMANAGER_URL" in message
    assert "\n" not in message


def test_alert_budget_is_generous_bounded_and_documented() -> None:
    """ALERT_BUDGET_PER_MINUTE defaults to 60 (about Slack's pace for one webhook), takes 1 to 100,000, and says
    what it does in --help."""
    env = Env({"SLACK_WEBHOOK_URL": URL})
    assert load_settings(env).alert_budget_per_minute == 60
    assert env.docs["ALERT_BUDGET_PER_MINUTE"].help
    assert load_settings(Env({"SLACK_WEBHOOK_URL": URL, "ALERT_BUDGET_PER_MINUTE": "500"})).alert_budget_per_minute == (
        500
    )
    for bad in ("0", "100001", "many"):
        with pytest.raises(ConfigError, match=r"^ALERT_BUDGET_PER_MINUTE="):
            load_settings(Env({"SLACK_WEBHOOK_URL": URL, "ALERT_BUDGET_PER_MINUTE": bad}))
