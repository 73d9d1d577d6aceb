"""The simulated fleet follows the Go original's model, statistically and formula by formula."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from publisher.simulator import (
    BASE_SPREAD,
    GPUS_PER_HOST,
    LOAD_HEAT,
    MAX_POWER,
    MAX_TEMPERATURE,
    MIN_TEMPERATURE,
    MODELS,
    SPIKE_MAX,
    TARGET_JUMP_PROBABILITY,
    TREND_BOUND,
    TREND_STEP,
    UTIL_APPROACH,
    WATTS_PER_UTIL,
    Fleet,
    FleetState,
    Readings,
    advance,
    build_fleet,
    initial_state,
)


def run(seed: int, devices: int, ticks: int, p: float) -> tuple[Fleet, list[tuple[FleetState, Readings, FleetState]]]:
    rng = np.random.default_rng(seed)
    fleet = build_fleet(devices, rng)
    state = initial_state(fleet, rng)
    steps = []
    for _ in range(ticks):
        readings, after = advance(fleet, state, p, rng)
        steps.append((state, readings, after))
        state = after
    return fleet, steps


def test_fleet_ids_hosts_and_models() -> None:
    """Ids are stable and unique, each host holds up to 8 GPUs of one model, base temperatures sit near its idle."""
    fleet = build_fleet(21, np.random.default_rng(3))
    other_seed = build_fleet(21, np.random.default_rng(4))
    assert fleet.device_ids == other_seed.device_ids, "ids do not depend on the seed"
    assert fleet.device_ids[0] == "gpu-0000"
    assert fleet.device_ids[20] == "gpu-0020"
    assert len(set(fleet.device_ids)) == 21
    hosts = sorted(set(fleet.hosts))
    assert len(hosts) == 3
    idle = {m.name: m.idle_celsius for m in MODELS}
    for host in hosts:
        members = [i for i, h in enumerate(fleet.hosts) if h == host]
        assert len(members) <= GPUS_PER_HOST
        assert len({fleet.models[i] for i in members}) == 1, "one model per host"
    for model, base in zip(fleet.models, fleet.base_temperature.tolist(), strict=True):
        assert abs(base - idle[model]) <= BASE_SPREAD


def test_same_seed_same_readings_other_seed_different() -> None:
    """SIMULATOR_SEED fixes the whole sequence of readings; another seed gives another one."""
    fleet_a, steps_a = run(42, 50, 30, 0.05)
    fleet_b, steps_b = run(42, 50, 30, 0.05)
    _, steps_c = run(43, 50, 30, 0.05)
    assert fleet_a.models == fleet_b.models
    for (_, a, _), (_, b, _) in zip(steps_a, steps_b, strict=True):
        for field in ("temperature", "power", "util", "abnormal"):
            assert np.array_equal(getattr(a, field), getattr(b, field))
    assert not np.array_equal(steps_a[-1][1].temperature, steps_c[-1][1].temperature)


@pytest.mark.parametrize("p", [0.0, 0.01, 0.05, 0.5, 1.0])
def test_abnormal_rate_matches_probability(p: float) -> None:
    """Over 200,000 readings the share of abnormal ones is within 5 standard errors of ABNORMAL_PROBABILITY."""
    _, steps = run(7, 1000, 200, p)
    abnormal = np.concatenate([r.abnormal for _, r, _ in steps])
    tolerance = 5 * np.sqrt(p * (1 - p) / abnormal.size)
    assert abs(abnormal.mean() - p) <= tolerance


def test_formulas_hold_for_every_reading() -> None:
    """temperature = base + util*0.4 + trend (+ U(0,100) if abnormal), power = util*3.5 + temperature/4."""
    fleet, steps = run(11, 300, 100, 0.2)
    for before, readings, after in steps:
        expected = fleet.base_temperature + readings.util * LOAD_HEAT / 100 + after.trend
        spike = readings.temperature - expected
        normal = ~readings.abnormal
        assert np.allclose(spike[normal], 0.0, atol=1e-9)
        assert np.all(spike[readings.abnormal] >= 0.0)
        assert np.all(spike[readings.abnormal] < SPIKE_MAX)
        assert np.allclose(readings.power, readings.util * WATTS_PER_UTIL + readings.temperature / 4)
        assert np.all(np.abs(after.trend) <= TREND_BOUND)
        assert np.all(np.abs(after.trend - before.trend) <= TREND_STEP + 1e-12)
        assert np.allclose(readings.util, after.util)


def test_abnormal_spikes_are_uniform() -> None:
    """Abnormal readings add U(0, 100): the mean excess is near 50 and both halves of the range are hit evenly."""
    fleet, steps = run(5, 1000, 100, 0.1)
    spikes = np.concatenate([
        r.temperature[r.abnormal] - (fleet.base_temperature + r.util * LOAD_HEAT / 100 + a.trend)[r.abnormal]
        for _, r, a in steps
    ])
    assert spikes.size > 8000
    assert abs(spikes.mean() - 50) < 1.5
    assert abs((spikes < 50).mean() - 0.5) < 0.03


def test_utilization_moves_toward_target_which_jumps_one_time_in_ten() -> None:
    """Utilization closes a fixed share of the gap to its target; targets jump with probability 0.1."""
    _, steps = run(13, 1000, 100, 0.05)
    jumps = 0
    for before, _, after in steps:
        assert np.allclose(after.util, before.util + (after.target - before.util) * UTIL_APPROACH)
        jumps += int(np.count_nonzero(after.target != before.target))
    rate = jumps / (1000 * 100)
    assert abs(rate - TARGET_JUMP_PROBABILITY) < 5 * np.sqrt(0.09 / 100_000)


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**32),
    devices=st.integers(1, 40),
    ticks=st.integers(1, 60),
    p=st.floats(0.0, 1.0),
)
def test_readings_stay_within_the_model_bounds(seed: int, devices: int, ticks: int, p: float) -> None:
    """For any seed, utilization stays in [0, 100] and temperature and power within the bounds the encoder uses."""
    _, steps = run(seed, devices, ticks, p)
    for _, readings, _ in steps:
        assert np.all((readings.util >= 0) & (readings.util <= 100))
        assert np.all((readings.temperature >= MIN_TEMPERATURE) & (readings.temperature <= MAX_TEMPERATURE))
        assert np.all((readings.power >= 0) & (readings.power <= MAX_POWER))


def test_fleet_needs_a_device() -> None:
    """A fleet of zero devices is refused rather than silently publishing nothing."""
    with pytest.raises(ValueError, match="at least one device"):
        build_fleet(0, np.random.default_rng(0))


def test_the_originals_defaults_alert() -> None:
    """With the original's defaults (5 devices, ABNORMAL_PROBABILITY 0.05) a seeded hour crosses 190 °C, the
    alerter's default threshold, on loaded GPUs only; normal readings never come near it."""
    _, steps = run(2026, 5, 3600, 0.05)
    over = [(r.util[i], bool(r.abnormal[i])) for _, r, _ in steps for i in np.flatnonzero(r.temperature > 190)]
    assert len(over) >= 3
    assert all(abnormal and util > 50 for util, abnormal in over)
    normal_max = max(float(r.temperature[~r.abnormal].max(initial=0)) for _, r, _ in steps)
    assert normal_max < 120


def test_base_temperatures_make_a_spike_on_a_loaded_gpu_able_to_cross_190() -> None:
    """Every model's hottest base plus full load and the largest spike exceeds 190 °C; idle GPUs cannot reach it."""
    for model in MODELS:
        assert model.idle_celsius - BASE_SPREAD + LOAD_HEAT + SPIKE_MAX > 190
        assert model.idle_celsius + BASE_SPREAD + TREND_BOUND + SPIKE_MAX < 190
