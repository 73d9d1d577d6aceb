"""ALERTMANAGER_* settings: off when unset, bounded, documented, and a URL whose credentials never print."""

from __future__ import annotations

import logging

import pytest
from prometheus_client import CollectorRegistry

from alerter.alertmanager import build_receiver
from alerter.settings import AlertmanagerSettings, Endpoint, load_alertmanager_settings
from shared.config import ConfigError, Env
from shared.logs import REDACTED, configure_logging

SECRET_URL = "https://alice:s3cr3t-pass@am.example:9443/prefix/?token=t0k3n-value&team=gpu"  # noqa: S105 - a fake


def load(**values: str) -> tuple[AlertmanagerSettings, Env]:
    env = Env(values)
    return load_alertmanager_settings(env), env


def test_unset_url_means_off_with_defaults() -> None:
    """Without ALERTMANAGER_URL the receiver is off; timeout 10s, resend every 1m, backoff at most 30s."""
    settings, _ = load()
    assert not settings.enabled
    assert (settings.timeout, settings.resend_interval, settings.backoff_max) == (10.0, 60.0, 30.0)
    assert settings.validity == 240.0


def test_every_setting_is_documented_even_when_off() -> None:
    """Each ALERTMANAGER_* setting records its help text, default and unit for --help and the README."""
    _, env = load()
    docs = {name: doc for name, doc in env.docs.items() if name.startswith("ALERTMANAGER_")}
    assert list(docs) == [
        "ALERTMANAGER_URL",
        "ALERTMANAGER_TIMEOUT",
        "ALERTMANAGER_RESEND_INTERVAL",
        "ALERTMANAGER_BACKOFF_MAX",
    ]
    assert all(doc.help for doc in docs.values())
    assert (docs["ALERTMANAGER_RESEND_INTERVAL"].default, docs["ALERTMANAGER_RESEND_INTERVAL"].unit) == (
        "1m",
        "duration",
    )


def test_base_url_gets_the_api_path() -> None:
    """A base URL (with or without a trailing slash or route prefix) posts to its /api/v2/alerts."""
    for raw, expected in [
        ("http://alertmanager:9093", "http://alertmanager:9093/api/v2/alerts"),
        ("http://alertmanager:9093/", "http://alertmanager:9093/api/v2/alerts"),
        ("http://h/am/", "http://h/am/api/v2/alerts"),
        ("http://h:1/api/v2/alerts", "http://h:1/api/v2/alerts"),
    ]:
        settings, _ = load(ALERTMANAGER_URL=raw)
        assert settings.endpoint is not None
        assert settings.endpoint.reveal() == expected


def test_credentials_are_kept_but_never_shown() -> None:
    """User, password and query reach the request URL; `shown`, repr and str hold none of them."""
    settings, _ = load(ALERTMANAGER_URL=SECRET_URL)
    endpoint = settings.endpoint
    assert endpoint is not None
    assert (
        endpoint.reveal() == "https://alice:s3cr3t-pass@am.example:9443/prefix/api/v2/alerts?token=t0k3n-value&team=gpu"
    )
    assert endpoint.shown == "https://am.example:9443/prefix/api/v2/alerts"
    for text in (endpoint.shown, repr(endpoint), str(endpoint), repr(settings)):
        for secret in ("alice", "s3cr3t", "t0k3n", "token"):
            assert secret not in text


def test_redact_stars_out_every_credential() -> None:
    """Text echoing the URL, the user, the password, or a query value (raw or decoded) comes out with each starred."""
    endpoint = Endpoint.parse("http://bob:p%40ss@h:1/?key=a%2Fb&sig=x+y%2Bz")
    text = endpoint.redact("denied: http://bob:p%40ss@h:1/?key=a%2Fb user bob pass p@ss key a/b a%2Fb sig x y+z")
    for secret in ("bob", "p%40ss", "p@ss", "a%2Fb", "a/b", "x y+z", "x+y%2Bz"):
        assert secret not in text
    assert "h:1" in text


@pytest.mark.parametrize(
    "raw", ["ftp://h/", "not a url", "http://:80/x", "http://h:port/", "http://user:hunter2@:99999/", "//h/x"]
)
def test_bad_url_is_one_line_without_the_value(raw: str) -> None:
    """An unusable URL is a ConfigError naming the variable, never repeating the value (it may hold a secret)."""
    with pytest.raises(ConfigError) as error:
        load(ALERTMANAGER_URL=raw)
    assert str(error.value).startswith("ALERTMANAGER_URL:")
    assert raw not in str(error.value)
    assert "hunter2" not in str(error.value)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("ALERTMANAGER_TIMEOUT", "0"),
        ("ALERTMANAGER_TIMEOUT", "6m"),
        ("ALERTMANAGER_RESEND_INTERVAL", "500ms"),
        ("ALERTMANAGER_RESEND_INTERVAL", "2h"),
        ("ALERTMANAGER_RESEND_INTERVAL", "soon"),
        ("ALERTMANAGER_BACKOFF_MAX", "11m"),
        ("ALERTMANAGER_BACKOFF_MAX", "nan"),
    ],
)
def test_durations_are_bounded(name: str, value: str) -> None:
    """Each duration has a floor and a sane ceiling; a value outside is a ConfigError naming the variable."""
    with pytest.raises(ConfigError, match=name):
        load(**{name: value})


def test_durations_are_read() -> None:
    """Durations take Go-style values."""
    settings, _ = load(
        ALERTMANAGER_URL="http://h:9093",
        ALERTMANAGER_TIMEOUT="2s",
        ALERTMANAGER_RESEND_INTERVAL="15s",
        ALERTMANAGER_BACKOFF_MAX="1m",
    )
    assert (settings.timeout, settings.resend_interval, settings.backoff_max, settings.validity) == (
        2.0,
        15.0,
        60.0,
        60.0,
    )


def test_build_receiver_follows_the_settings() -> None:
    """No receiver when the URL is unset; otherwise one posting there, its metrics in the given registry."""
    assert build_receiver(load()[0]) is None
    registry = CollectorRegistry()
    receiver = build_receiver(load(ALERTMANAGER_URL="http://127.0.0.1:9093")[0], registry)
    assert receiver is not None
    assert registry.get_sample_value("gpu_alerter_alertmanager_alerts_kept_alive") == 0
    assert receiver.book == {}


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_credentials_in_the_url_never_reach_a_log_line_whoever_writes_it(
    fmt: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A library that logs the request URL (urllib3's broken-header warning) or a credential on its own gets them
    blanked by the handler; the URL as the alerter shows it stays readable."""
    endpoint = Endpoint.parse("https://carol:pa55-w0rd@am.example:9443/?token=tok-9f8e7d&team=gpu")
    configure_logging("info", fmt)
    logging.getLogger("urllib3.connection").warning("Failed to parse headers (url=%s): broken", endpoint.reveal())
    logging.getLogger("some.library").warning("auth pa55-w0rd, token tok-9f8e7d")
    logging.getLogger("alerter").warning("posting to %s", endpoint.shown)
    err = capsys.readouterr().err
    for secret in ("pa55-w0rd", "tok-9f8e7d", "carol"):
        assert secret not in err
    assert f"posting to {endpoint.shown}" in err
    assert err.count(REDACTED) >= 3
