"""`make demo`'s early-warning story, offline: the demo's settings, through the real simulator and the pure policy,
tell forecast, warning, critical and resolved for the GPU with the failing fan, in that order, within 5 minutes."""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from alerter.domain.notification import Kind
from alerter.service import alert_policy
from alerter.settings import load_settings as load_alerter
from publisher.settings import load_settings as load_publisher
from publisher.simulator import advance, build_fleet, failing_fans, initial_state
from shared.config import Env
from tests.policy_support import AlertsTopic, Rec, Run

REPO = Path(__file__).resolve().parents[2]


def demo_defaults() -> dict[str, str]:
    """scripts/demo.py's DEFAULTS, read from its source (the script is no module of the project)."""
    tree = ast.parse((REPO / "scripts" / "demo.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and [getattr(t, "id", None) for t in node.targets] == ["DEFAULTS"]:
            value = ast.literal_eval(node.value)
            assert isinstance(value, dict)
            return value
    raise AssertionError("scripts/demo.py has no DEFAULTS")


DEFAULTS = demo_defaults()


@settings(max_examples=12, deadline=None)
@given(st.integers(0, 2**32), st.floats(0, 300))
def test_the_demo_shows_forecast_warning_critical_resolved_within_five_minutes(seed: int, start: float) -> None:
    """Whatever the seed and the moment the demo starts (the trend's buckets are aligned on event time), the GPU
    with the failing fan gets a forecast, then a warning, then a critical alert, then a resolved notice, each
    once, all within 300 s of the first reading."""
    env = Env({**DEFAULTS, "SLACK_WEBHOOK_URL": "http://127.0.0.1:1/x"})
    publisher, alerter = load_publisher(env), load_alerter(env)
    rng = np.random.default_rng(seed)
    fleet = build_fleet(publisher.num_devices, rng)
    fans = failing_fans(fleet, publisher.source.fans, publisher.interval)
    state = initial_state(fleet, rng)
    t0 = 1_800_000_000.0 + start
    records = []
    for tick in range(300):
        readings, state = advance(fleet, state, publisher.abnormal_probability, rng, fans=fans, tick=tick)
        t = t0 + tick * publisher.interval
        records += [
            Rec(device, float(readings.temperature[i]), t, t, t + 0.1) for i, device in enumerate(fleet.device_ids)
        ]
    run = Run(alert_policy(alerter), AlertsTopic())
    run.feed(records)
    story = [(s.kind, s.at - t0) for s in run.sent if s.device in publisher.source.fans.devices]
    assert [kind for kind, _ in story] == [Kind.FORECAST, Kind.WARNING, Kind.CRITICAL, Kind.RESOLVED], story
