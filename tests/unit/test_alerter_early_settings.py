"""Issue 14's settings and MAX_TRACKED_DEVICES: names and defaults as fixed, off unless set, one line per bad value."""

from __future__ import annotations

import pytest

from alerter.service import alert_policy
from alerter.settings import EarlyWarning, load_settings
from shared.config import ConfigError, Env

URL = {"SLACK_WEBHOOK_URL": "https://hooks.slack.com/services/T/B/x"}
NAMES = [
    "WARNING_THRESHOLD",
    "THRESHOLDS_FROM_GPU",
    "GPU_THRESHOLD_MARGIN",
    "FORECAST_HORIZON",
    "FORECAST_WINDOW",
    "RESOLVE_AFTER",
    "RESOLVE_HYSTERESIS",
    "SILENCE_AFTER",
    "MAX_TRACKED_DEVICES",
]


def test_unset_they_leave_the_original_alerter() -> None:
    """With none set: no warning, no per-GPU thresholds, no forecast, resolve or silence, and the documented
    defaults (margin 5 °C, window 2m, hysteresis 5 °C); the policy skips every reading at or below the threshold."""
    env = Env(URL)
    settings = load_settings(env)
    assert settings.early == EarlyWarning(None, False, 5.0, None, 120.0, None, 5.0, None)
    assert settings.max_tracked_devices == 250_000
    assert alert_policy(settings).watch_above == 190.0
    docs = {name: (env.docs[name].default, env.docs[name].unit) for name in NAMES}
    assert docs == {
        "WARNING_THRESHOLD": ("", "°C"),
        "THRESHOLDS_FROM_GPU": ("false", ""),
        "GPU_THRESHOLD_MARGIN": ("5", "°C"),
        "FORECAST_HORIZON": ("", "duration"),
        "FORECAST_WINDOW": ("2m", "duration"),
        "RESOLVE_AFTER": ("", "duration"),
        "RESOLVE_HYSTERESIS": ("5", "°C"),
        "SILENCE_AFTER": ("", "duration"),
        "MAX_TRACKED_DEVICES": ("250000", ""),
    }
    assert all(env.docs[name].help for name in NAMES)


def test_set_they_reach_the_policy() -> None:
    """Every value set arrives in the pure policy, durations in seconds."""
    settings = load_settings(
        Env(
            {
                **URL,
                "TEMPERATURE_THRESHOLD": "90",
                "WARNING_THRESHOLD": "80",
                "THRESHOLDS_FROM_GPU": "true",
                "GPU_THRESHOLD_MARGIN": "3",
                "FORECAST_HORIZON": "10m",
                "FORECAST_WINDOW": "5m",
                "RESOLVE_AFTER": "90s",
                "RESOLVE_HYSTERESIS": "2.5",
                "SILENCE_AFTER": "2m",
                "MAX_TRACKED_DEVICES": "50000",
            }
        )
    )
    policy = alert_policy(settings)
    assert (policy.threshold, policy.warning_threshold, policy.gpu_thresholds, policy.gpu_margin) == (90, 80, True, 3)
    assert (policy.forecast_horizon, policy.forecast_window, policy.resolve_after) == (600, 300, 90)
    assert (policy.resolve_hysteresis, policy.silence_after, settings.max_tracked_devices) == (2.5, 120, 50_000)


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"WARNING_THRESHOLD": "190"}, "WARNING_THRESHOLD='190': expected a number below TEMPERATURE_THRESHOLD (190)"),
        ({"WARNING_THRESHOLD": "0"}, "WARNING_THRESHOLD='0': expected a number > 0 and < 10000"),
        ({"WARNING_THRESHOLD": "warm"}, "WARNING_THRESHOLD='warm': expected a number > 0 and < 10000"),
        ({"THRESHOLDS_FROM_GPU": "maybe"}, "THRESHOLDS_FROM_GPU='maybe': expected true or false"),
        ({"GPU_THRESHOLD_MARGIN": "-1"}, "GPU_THRESHOLD_MARGIN='-1': expected a number from 0 to 100"),
        ({"FORECAST_HORIZON": "0"}, "FORECAST_HORIZON='0': expected a duration such as 30s, 5m or 1h, from 1s to 24h"),
        ({"FORECAST_WINDOW": "5s"}, "FORECAST_WINDOW='5s': expected a duration such as 30s, 5m or 1h, from 12s to 24h"),
        ({"RESOLVE_AFTER": "25h"}, "RESOLVE_AFTER='25h': expected a duration such as 30s, 5m or 1h, from 1s to 24h"),
        ({"RESOLVE_HYSTERESIS": "nan"}, "RESOLVE_HYSTERESIS='nan': expected a number from 0 to 100"),
        ({"SILENCE_AFTER": "soon"}, "SILENCE_AFTER='soon': expected a duration such as 30s, 5m or 1h, from 1s to 24h"),
        ({"MAX_TRACKED_DEVICES": "10"}, "MAX_TRACKED_DEVICES=10: expected an integer from 1000 to 100000000"),
    ],
)
def test_bad_values_name_the_variable(values: dict[str, str], message: str) -> None:
    """One ConfigError line per bad value, naming it and what is expected."""
    with pytest.raises(ConfigError) as error:
        load_settings(Env({**URL, **values}))
    assert str(error.value) == message
