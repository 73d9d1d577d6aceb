"""The temperature forecast as pure code: spikes and settling load changes never forecast, steady ramps do, early.

Scenarios are generated from numbers Hypothesis draws (rates, time constants,
noise, sampling) plus a seed for the noise and the spikes, so every failure
replays exactly.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Iterable, Iterator

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from alerter.domain.forecast import BUCKETS, SPIKE_MARGIN, SPIKE_RUN, Forecast, TrendModel, TrendState, Update
from publisher.simulator import advance, build_fleet, initial_state

THRESHOLD = 87.0
WINDOW = 120.0  # FORECAST_WINDOW's default
LONG_WINDOW = 300.0  # 2.5 x the slowest load change: long enough to tell a 3 °C/min ramp from one
START = 1.7e9  # epoch seconds
SPIKE_PROBABILITY = 0.05  # the simulator's default ABNORMAL_PROBABILITY
SPIKE_MAX = 100.0  # an abnormal reading adds U(0, SPIKE_MAX), as in the simulator
STATE_BYTES = 1500  # what a device's state may hold, whatever it was fed


def sample_times(duration: float, interval: float, jitter: float, rng: np.random.Generator) -> np.ndarray:
    """Event times every `interval` seconds over `duration`, each late by up to `jitter` of an interval."""
    times = np.arange(0.0, duration, interval)
    return START + times + rng.uniform(0.0, jitter * interval, len(times))


def load_step(times: np.ndarray, onset: float, before: float, after: float, tau: float) -> np.ndarray:
    """A first-order response: `before` until `onset`, then settling toward `after` with time constant `tau`."""
    since = np.maximum(times - onset, 0.0)
    return after - (after - before) * np.exp(-since / tau)


def noisy(clean: np.ndarray, noise: float, spikes: float, rng: np.random.Generator) -> np.ndarray:
    """Uniform noise of +-`noise` °C, and the simulator's abnormal readings with probability `spikes`."""
    values = clean + rng.uniform(-noise, noise, len(clean))
    abnormal = rng.random(len(clean)) < spikes
    values[abnormal] += rng.uniform(0.0, SPIKE_MAX, int(abnormal.sum()))
    return values


def forecasts(
    state: TrendState, times: Iterable[float], temperatures: Iterable[float], horizon: float
) -> Iterator[tuple[float, Forecast | None]]:
    """Feed readings in order, asking for a forecast after each, as the alerter does."""
    for at, temperature in zip(times, temperatures, strict=True):
        state.add(at, temperature)
        yield at, state.forecast(THRESHOLD, horizon, at)


def raised(state: TrendState, times: np.ndarray, temperatures: np.ndarray, horizon: float) -> list[float]:
    return [at for at, forecast in forecasts(state, times.tolist(), temperatures.tolist(), horizon) if forecast]


def first_forecast(
    state: TrendState, times: np.ndarray, temperatures: np.ndarray, horizon: float
) -> tuple[float, Forecast] | None:
    for at, forecast in forecasts(state, times.tolist(), temperatures.tolist(), horizon):
        if forecast is not None:
            return at, forecast
    return None


def examples(count: int) -> settings:
    """`count` examples under the default and ci profiles, proportionally more under hunt (tests/conftest.py)."""
    return settings(max_examples=max(1, count * settings().max_examples // 100), deadline=None)


seeds = st.integers(0, 2**32 - 1)
intervals = st.floats(0.1, 10.0)  # seconds between readings
noises = st.floats(0.0, 1.0)  # ± °C
horizons = st.floats(60.0, 900.0)
jitters = st.floats(0.0, 0.95)  # each reading late by up to this share of an interval: irregular sampling
spike_sizes = st.one_of(st.floats(-1e3, 1e6), st.sampled_from([1e6, SPIKE_MAX, THRESHOLD]))
spike_runs = st.lists(spike_sizes, min_size=1, max_size=SPIKE_RUN)  # consecutive abnormal readings


# -- never: spikes and load changes that settle below the threshold --------------------------------------------


@examples(150)
@given(
    level=st.floats(20.0, THRESHOLD - 0.5),
    noise=noises,
    interval=intervals,
    where=st.floats(0.0, 1.0),
    spikes=spike_runs,
    horizon=horizons,
    seed=seeds,
)
def test_spikes_of_any_size_anywhere_never_forecast(
    *, level: float, noise: float, interval: float, where: float, spikes: list[float], horizon: float, seed: int
) -> None:
    """A steady device with one abnormal reading, or a run of up to SPIKE_RUN, of any sizes (down too) and at any
    point, gets no forecast."""
    rng = np.random.default_rng(seed)
    times = sample_times(3 * WINDOW, interval, 0.3, rng)
    temperatures = noisy(np.full(len(times), level), noise, 0.0, rng)
    start = int(where * (len(times) - len(spikes)))
    temperatures[start : start + len(spikes)] += spikes
    assert raised(TrendModel(WINDOW).new_state(), times, temperatures, horizon) == []


@examples(150)
@given(
    tau=st.floats(3.0, 120.0),
    before=st.floats(20.0, 60.0),
    below=st.floats(0.05, 30.0),
    noise=noises,
    interval=intervals,
    jitter=jitters,
    spikes=st.sampled_from([0.0, SPIKE_PROBABILITY]),
    horizon=horizons,
    seed=seeds,
)
# Found by hunts (HYPOTHESIS_PROFILE=hunt): two spikes before a step that look like a steep ramp; a curve standing
# 20 °C above the readings; a search that missed the load change's own curve; noise on a slow load change that a test
# calibrated for one degree of freedom took for a ramp (the null is bounded in two: tau and asymptote).
@example(tau=3.0, before=20.0, below=24.0, noise=0.0, interval=5.0625, jitter=0.0, spikes=0.05, horizon=60.0, seed=265)
@example(tau=3.0, before=26.0, below=1.0, noise=1.0, interval=5.0625, jitter=0.0, spikes=0.05, horizon=60.0, seed=265)
@example(
    tau=3.0, before=29.0, below=1.0, noise=0.0, interval=5.6875, jitter=0.5, spikes=0.05, horizon=60.0, seed=118669115
)
@example(
    tau=27.25, before=20.0, below=0.0625, noise=0.0, interval=8.59375, jitter=0.375, spikes=0.0, horizon=60.0, seed=137
)
@example(
    tau=101.5, before=20.0, below=1.0, noise=1.0, interval=2.125, jitter=0.0, spikes=0.0, horizon=132.0, seed=1
)
def test_load_change_settling_below_the_threshold_never_forecasts(
    *,
    tau: float,
    before: float,
    below: float,
    noise: float,
    interval: float,
    jitter: float,
    spikes: float,
    horizon: float,
    seed: int,
) -> None:
    """A load step settling any distance below the threshold never forecasts, however steep its start.

    Time constants 3 s to 2 min (settle_time, the null's edge), noise up to ±1 °C, a reading every 0.1 to 10 s,
    each up to 95 % of an interval late, with or without the simulator's 5 % of spikes; followed until well after
    it settled. Down to 0.05 °C below, even where the noise band reaches the threshold: such readings cross it (the
    critical alert fires), so a forecast there would not be false, but the model does not need that leeway.
    """
    rng = np.random.default_rng(seed)
    after = THRESHOLD - below
    times = sample_times(WINDOW + 6 * tau + 2 * WINDOW, interval, jitter, rng)
    clean = load_step(times, START + WINDOW, min(before, after), after, tau)
    assert raised(TrendModel(WINDOW).new_state(), times, noisy(clean, noise, spikes, rng), horizon) == []


@examples(50)
@given(
    tau=st.floats(3.0, 120.0),
    below=st.floats(0.05, 30.0),
    noise=noises,
    interval=st.floats(0.5, 10.0),
    horizon=horizons,
    where=st.floats(0.0, 1.0),
    spikes=spike_runs,
    seed=seeds,
)
def test_spikes_on_a_settling_load_change_never_forecast(
    *,
    tau: float,
    below: float,
    noise: float,
    interval: float,
    horizon: float,
    where: float,
    spikes: list[float],
    seed: int,
) -> None:
    """A spike, or a run of up to SPIKE_RUN, anywhere on a load step that settles below the threshold, the step's
    steep start included, changes nothing: still no forecast."""
    rng = np.random.default_rng(seed)
    times = sample_times(WINDOW + 6 * tau + WINDOW, interval, 0.3, rng)
    clean = load_step(times, START + WINDOW, 30.0, THRESHOLD - below, tau)
    temperatures = noisy(clean, noise, 0.0, rng)
    start = int(where * (len(times) - len(spikes)))
    temperatures[start : start + len(spikes)] += spikes
    assert raised(TrendModel(WINDOW).new_state(), times, temperatures, horizon) == []


@examples(5)
@given(seed=seeds, window=st.sampled_from([WINDOW, LONG_WINDOW]))
def test_simulated_fleet_gets_no_forecast(seed: int, window: float) -> None:
    """Twenty minutes of 40 simulated GPUs (5 % spikes), against a threshold just above their hottest normal
    reading: no forecast at all. (bench/forecast.py runs 1,000 GPUs for an hour.)"""
    ticks = []
    rng = np.random.default_rng(seed)
    fleet = build_fleet(40, rng)
    fleet_state = initial_state(fleet, rng)
    for _ in range(20 * 60):
        readings, fleet_state = advance(fleet, fleet_state, SPIKE_PROBABILITY, rng)
        ticks.append(readings)
    threshold = max(float(r.temperature[~r.abnormal].max(initial=-np.inf)) for r in ticks) + 0.5
    states = [TrendModel(window).new_state() for _ in range(len(fleet))]
    for tick, readings in enumerate(ticks):
        at = START + tick
        for state, temperature in zip(states, readings.temperature.tolist(), strict=True):
            state.add(at, temperature)
            assert state.forecast(threshold, 2 * window, at) is None


# -- always: a steady ramp toward the threshold ------------------------------------------------------------------


def check_ramp(*, window: float, rate: float, noise: float, interval: float, spikes: float, horizon: float, seed: int):
    """Ramp at `rate` °C/min, crossing the threshold a window and a horizon after it is first seen."""
    rng = np.random.default_rng(seed)
    crossing = START + window + horizon + 60.0
    times = sample_times(crossing - START, interval, 0.3, rng)
    clean = THRESHOLD - rate / 60.0 * (crossing - times)
    first = first_forecast(TrendModel(window).new_state(), times, noisy(clean, noise, spikes, rng), horizon)
    assert first is not None, "no forecast before the crossing"
    at, forecast = first
    remaining = crossing - at
    # Lead: the forecast comes at least half a horizon ahead (typically more than 0.8 of it).
    assert remaining >= horizon / 2
    # Its estimate: within 30 % of the true time left, plus two buckets of the window for the fit's lag.
    assert abs(forecast.eta - remaining) <= 0.3 * remaining + 2 * window / BUCKETS
    assert forecast.threshold == THRESHOLD
    assert forecast.rate == pytest.approx(rate, rel=0.5)
    assert forecast.reach_at > at  # the curve has not crossed yet
    assert forecast.level < THRESHOLD


@examples(60)
@given(
    rate=st.floats(3.0, 10.0),
    noise=noises,
    interval=st.floats(0.2, 5.0),
    spikes=st.sampled_from([0.0, SPIKE_PROBABILITY]),
    horizon=st.floats(120.0, 900.0),
    seed=seeds,
)
def test_steady_ramp_forecasts_early_with_a_long_enough_window(
    *, rate: float, noise: float, interval: float, spikes: float, horizon: float, seed: int
) -> None:
    """With a window of 2.5 x the slowest load change, a 3-10 °C/min ramp is forecast at least half a horizon
    before it crosses, its time to go right within 30 % (plus two buckets)."""
    check_ramp(window=LONG_WINDOW, rate=rate, noise=noise, interval=interval, spikes=spikes, horizon=horizon, seed=seed)


@examples(40)
@given(
    rate=st.floats(12.0, 40.0),
    noise=noises,
    interval=st.floats(0.2, 5.0),
    spikes=st.sampled_from([0.0, SPIKE_PROBABILITY]),
    horizon=st.floats(120.0, 900.0),
    seed=seeds,
)
@example(rate=12.0, noise=1.0, interval=2.0, spikes=0.0, horizon=120.0, seed=0)  # late: the test lacked power
def test_fast_ramp_forecasts_early_with_the_default_window(
    *, rate: float, noise: float, interval: float, spikes: float, horizon: float, seed: int
) -> None:
    """With the default 2-minute window, a ramp of 12 °C/min or more is forecast at least half a horizon ahead.

    Readings at most 5 s apart: the test's power rests on how noisy a bucket's level is, and read every 5-10 s a
    third of such ramps came later (the docstring of alerter.domain.forecast gives the boundary)."""
    check_ramp(window=WINDOW, rate=rate, noise=noise, interval=interval, spikes=spikes, horizon=horizon, seed=seed)


def test_slow_ramp_waits_for_a_window_that_can_rule_out_a_load_change() -> None:
    """A 2 °C/min ramp looks, over 2 minutes, like a load change settling just below the threshold: the default
    window does not forecast it, a 5-minute window does, a whole horizon ahead."""
    rng = np.random.default_rng(7)
    times = sample_times(1200.0, 1.0, 0.0, rng)
    temperatures = noisy(THRESHOLD - 2.0 / 60.0 * (START + 1200.0 - times), 0.5, 0.0, rng)
    assert raised(TrendModel(WINDOW).new_state(), times, temperatures, 300.0) == []
    first = first_forecast(TrendModel(LONG_WINDOW).new_state(), times, temperatures, 300.0)
    assert first is not None
    assert START + 1200.0 - first[0] > 240.0


def test_forecast_names_the_threshold_time_to_go_and_rate() -> None:
    """On a clean 6 °C/min ramp the forecast says when and how fast, as the message needs."""
    times = START + np.arange(0.0, 600.0, 1.0)
    temperatures = THRESHOLD - 0.1 * (START + 600.0 - times)
    first = first_forecast(TrendModel(WINDOW).new_state(), times, temperatures, 300.0)
    assert first is not None
    at, forecast = first
    assert forecast.threshold == THRESHOLD
    assert forecast.rate == pytest.approx(6.0, rel=0.05)
    assert forecast.eta == pytest.approx(START + 600.0 - at, abs=5.0)
    assert forecast.reach_at == pytest.approx(at + forecast.eta)
    assert forecast.level == pytest.approx(temperatures[times == at][0], abs=0.5)


def test_load_change_settling_above_the_threshold_forecasts() -> None:
    """A load step heading 10 °C past the threshold is forecast before its readings get there."""
    times = START + np.arange(0.0, 600.0, 1.0)
    temperatures = load_step(times, START + 120.0, 50.0, THRESHOLD + 10.0, 60.0)
    first = first_forecast(TrendModel(WINDOW).new_state(), times, temperatures, 300.0)
    assert first is not None
    at, forecast = first
    assert temperatures[times == at][0] < THRESHOLD
    assert forecast.asymptote == pytest.approx(THRESHOLD + 10.0, abs=2.0)


# -- the rules around it ----------------------------------------------------------------------------------------


def ramp_readings(rate: float = 12.0, duration: float = 900.0) -> tuple[np.ndarray, np.ndarray]:
    times = START + np.arange(0.0, duration, 1.0)
    return times, THRESHOLD - rate / 60.0 * (START + duration - 60.0 - times)


def test_no_forecast_at_or_above_the_threshold() -> None:
    """Once a reading is at or above the threshold the critical alert covers it: no forecast, then one again below."""
    times, temperatures = ramp_readings()
    state = TrendModel(WINDOW).new_state()
    first = first_forecast(state, times, temperatures, 300.0)
    assert first is not None
    at = first[0] + 1.0
    state.add(at, THRESHOLD)
    assert state.forecast(THRESHOLD, 300.0, at) is None
    state.add(at + 1.0, THRESHOLD - 1.0)
    assert state.forecast(THRESHOLD, 300.0, at + 1.0) is not None


def test_no_forecast_until_half_a_window_of_readings() -> None:
    """A fresh device, even on a steep ramp, gets no forecast before half a window of readings."""
    times, temperatures = ramp_readings(rate=30.0)
    state = TrendModel(WINDOW).new_state()
    first = first_forecast(state, times, temperatures, 900.0)
    assert first is not None
    assert first[0] - START >= WINDOW / 2


def test_forecast_goes_once_the_latest_readings_fall_away_from_its_curve() -> None:
    """Readings that drop away from the curve (the load went away) withdraw the forecast once they are most of the
    latest 2 * SPIKE_RUN + 1, before any bucket holding them is fitted; fewer could be spikes, and change nothing."""
    times, temperatures = ramp_readings()
    state = TrendModel(WINDOW).new_state()
    first = first_forecast(state, times, temperatures, 300.0)
    assert first is not None
    at, forecast = first
    answers = []
    for step in range(1, SPIKE_RUN + 2):
        state.add(at + step, forecast.level - 2 * SPIKE_MARGIN)
        answers.append(state.forecast(THRESHOLD, 300.0, at + step))
    assert all(answer is not None for answer in answers[:SPIKE_RUN])
    assert answers[SPIKE_RUN] is None


def test_gap_longer_than_the_window_starts_over() -> None:
    """After a gap longer than the window the history is dropped: no forecast until half a window again."""
    times, temperatures = ramp_readings()
    state = TrendModel(WINDOW).new_state()
    assert first_forecast(state, times[:400], temperatures[:400], 600.0) is not None
    at = float(times[399]) + WINDOW + 1.0
    assert state.add(at, float(temperatures[400])) is Update.RESET
    assert state.forecast(THRESHOLD, 600.0, at) is None
    assert len(state.points()[0]) == 0


def test_late_duplicate_and_invalid_readings_are_dropped() -> None:
    """A reading at or before the latest is dropped as late, one far in the past starts over, NaN is invalid."""
    state = TrendModel(WINDOW).new_state()
    assert state.add(START, 50.0) is Update.ACCEPTED
    assert state.add(START + 1.0, 50.0) is Update.ACCEPTED
    assert state.add(START + 1.0, 99.0) is Update.LATE
    assert state.add(START + 0.5, 50.0) is Update.LATE
    assert state.add(math.nan, 50.0) is Update.INVALID
    assert state.add(START + 2.0, math.inf) is Update.INVALID
    assert state.add(START + 1.0 - WINDOW - 1.0, 50.0) is Update.RESET


@examples(40)
@given(
    rate=st.floats(10.0, 20.0),
    burst=st.integers(1, 300),
    resend=st.floats(0.0, 0.5),
    seed=seeds,
)
def test_answer_depends_on_event_time_only(rate: float, burst: int, resend: float, seed: int) -> None:
    """Readings in bursts, asked about only at each burst's end, with a share re-sent late or twice (a replay),
    get the same forecasts as the same readings one by one."""
    rng = np.random.default_rng(seed)
    times, clean = ramp_readings(rate=rate)
    temperatures = noisy(clean, 0.5, SPIKE_PROBABILITY, rng)
    steady = TrendModel(WINDOW).new_state()
    expected = {at: forecast for at, forecast in forecasts(steady, times.tolist(), temperatures.tolist(), 600.0)}
    bursty = TrendModel(WINDOW).new_state()
    for start in range(0, len(times), burst):
        for index in range(start, min(start + burst, len(times))):
            bursty.add(float(times[index]), float(temperatures[index]))
            if rng.random() < resend:  # an earlier reading again, as a replay after a restart delivers it
                earlier = int(rng.integers(max(0, index - 30), index + 1))
                assert bursty.add(float(times[earlier]), float(temperatures[earlier])) is Update.LATE
        at = float(times[min(start + burst, len(times)) - 1])
        assert bursty.forecast(THRESHOLD, 600.0, at) == expected[at]


@examples(60)
@given(
    count=st.integers(0, 20_000),
    interval=st.floats(0.001, 30.0),
    seed=seeds,
)
def test_state_size_is_bounded_whatever_the_input(count: int, interval: float, seed: int) -> None:
    """However many readings, at whatever rate, a device's state holds at most BUCKETS points and 1.5 KB."""
    rng = np.random.default_rng(seed)
    state = TrendModel(WINDOW).new_state()
    at = START
    for temperature in rng.uniform(20.0, 100.0, count).tolist():
        at += interval * float(rng.uniform(0.5, 1.5))
        state.add(at, temperature)
    state.forecast(THRESHOLD, 300.0, at)
    assert len(state.points()[0]) <= BUCKETS
    assert sys.getsizeof(state) <= STATE_BYTES


def test_bad_settings_and_queries() -> None:
    """A window that is not a positive number is refused; a query with a nonsense threshold or horizon is None."""
    with pytest.raises(ValueError, match="window"):
        TrendModel(0.0)
    with pytest.raises(ValueError, match="settle_time"):
        TrendModel(WINDOW, settle_time=math.nan)
    times, temperatures = ramp_readings()
    state = TrendModel(WINDOW).new_state()
    assert first_forecast(state, times, temperatures, 300.0) is not None
    at = float(times[-1])
    for threshold, horizon in ((math.nan, 300.0), (THRESHOLD, 0.0), (THRESHOLD, math.inf), (THRESHOLD, -5.0)):
        assert state.forecast(threshold, horizon, at) is None
