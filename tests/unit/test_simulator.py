"""The simulated fleet follows the Go original's model, statistically and formula by formula."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from publisher.settings import FanSettings
from publisher.simulator import (
    BASE_SPREAD,
    GPUS_PER_HOST,
    LOAD_HEAT,
    MAX_FAN_HEAT,
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
    FailingFans,
    Fleet,
    FleetState,
    Readings,
    advance,
    build_fleet,
    failing_fans,
    initial_state,
)
from shared.config import ConfigError


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


def fans_for(fleet: Fleet, devices: tuple[str, ...], rate: float = 25.0, heat_for: float = 222.0) -> FailingFans:
    fans = failing_fans(fleet, FanSettings(devices, rate, heat_for), 1.0)
    assert fans is not None
    return fans


def test_a_failing_fan_heats_steadily_then_cools_and_fails_again() -> None:
    """From the first tick the GPU heats 25 °C/min for 222 ticks from a steady 60 °C, then cools (time constant
    15 ticks) and fails again 5 minutes after it recovered; no abnormal reading, no random walk on it."""
    rng = np.random.default_rng(3)
    fleet = build_fleet(4, rng)
    fans = fans_for(fleet, ("gpu-0001",))
    state = initial_state(fleet, rng)
    temperatures = []
    for tick in range(222 + 300 + 60):
        readings, state = advance(fleet, state, 1.0, rng, fans=fans, tick=tick)
        temperatures.append(float(readings.temperature[1]))
        assert not readings.abnormal[1]
    assert temperatures[0] == 60.0
    assert np.allclose(np.diff(temperatures[:222]), 25 / 60)
    assert temperatures[221] > 150
    assert temperatures[222 + 45] < 60 + 5
    assert temperatures[222 + 300 + 30] == 60.0 + 30 * 25 / 60, "the next failure"
    assert fans.extra_heat(10_000) <= MAX_FAN_HEAT


def test_failing_fans_leave_every_other_reading_as_it_was() -> None:
    """The same seed with and without a failing fan: every other GPU's readings are identical, tick by tick."""
    runs = []
    for devices in ((), ("gpu-0002",)):
        rng = np.random.default_rng(42)
        fleet = build_fleet(6, rng)
        fans = failing_fans(fleet, FanSettings(devices), 1.0)
        state = initial_state(fleet, rng)
        ticks = []
        for tick in range(50):
            readings, state = advance(fleet, state, 0.3, rng, fans=fans, tick=tick)
            ticks.append(np.delete(readings.temperature, 2))
        runs.append(np.array(ticks))
    assert np.array_equal(runs[0], runs[1])


def test_an_unknown_failing_fan_is_a_configuration_error() -> None:
    """FAILING_FANS naming a GPU the fleet does not have stops start-up with one line naming the range."""
    fleet = build_fleet(5, np.random.default_rng(1))
    expected = r"^FAILING_FANS: no simulated GPU 'gpu-0009' \(NUM_DEVICES=5: gpu ids gpu-0000 to gpu-0004\)$"
    with pytest.raises(ConfigError, match=expected):
        failing_fans(fleet, FanSettings(("gpu-0001", "gpu-0009")), 1.0)
    assert failing_fans(fleet, FanSettings(()), 1.0) is None
