"""`python -m bench.forecast` (also a part of `make bench`): can the forecast be trusted, how early, at what cost.

No Kafka: the simulator and the forecast are pure code, fed reading by reading
as the alerter would, asking for a forecast after every reading.

1. False forecasts over an hour of the simulator's fleet (`publisher.simulator`,
   ABNORMAL_PROBABILITY 0.05, a tick a second): 1,000 devices and the 5-device
   default. The threshold is set just above the hottest normal (not abnormal)
   reading the same run produces (a first pass with the same seed finds it), so
   only spikes cross it and no device really heads there: every forecast
   raised is a false one. A forecast is raised when a device's forecast appears
   (consecutive readings with one count once).
2. Lead time. A failing fan: a device at a steady load THRESHOLD_GAP below the
   threshold whose fan fails after 10 minutes; it then heats toward a steady
   state FAN_RISE above where it was (far above the threshold), with the time
   constant that gives the initial rate listed. A steady ramp: a device that
   has been heating at the rate listed since before its first reading. Both
   with the simulator's spikes and either the simulator's noise (its bounded
   random-walk trend, which drifts about 2 °C a minute) or a sensor's ±1 °C.
   The crossing is the first normal reading above the threshold; the lead is
   how long before it the forecast first fired, and the estimate error
   compares the forecast's own time to go with the truth. A forecast before
   the fan fails counts as false.
3. Cost, in CPU time of this process (a shared machine's wall clock would
   measure its neighbours): an update, an update and a cached answer, a
   device steady just below the threshold, and a device heating toward it,
   whose window gets a full fit and test at every bucket (and, while it is
   forecast, the thorough search that confirms each rejection); side by side
   with the alert policy's own decision per reading. Memory per device from sys.getsizeof and, for 2,000
   states with a full window, from tracemalloc.

    python -m bench.forecast [--devices 1000] [--minutes 60] [--seeds 10]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import tracemalloc
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np

from alerter.domain.forecast import BUCKETS, TrendModel, TrendState
from alerter.domain.policy import AlertPolicy, DeviceState
from bench.table import print_table
from publisher.simulator import SPIKE_MAX, TREND_BOUND, TREND_STEP, Readings, advance, build_fleet, initial_state
from shared.models import TemperatureReading

ABNORMAL_PROBABILITY = 0.05
START = 1.7e9  # epoch seconds of the first tick
SEED = 14
MARGIN = 0.5  # °C above the hottest normal reading: "just above what normal operation reaches"
CONFIGS = ((120.0, 300.0), (300.0, 600.0))  # (FORECAST_WINDOW, FORECAST_HORIZON) in seconds
THRESHOLD = 87.0  # for the failing fan, which is defined relative to it
THRESHOLD_GAP = 30.0  # °C below the threshold the device runs before its fan fails
FAN_RISE = 100.0  # °C the failed fan would heat it by, in the end: far above the threshold
WALK, SENSOR = "simulator walk", "±1 °C sensor"
FAN_FAILS = 600.0  # seconds into the run
RATES = (2.0, 5.0, 10.0, 20.0)  # °C/min: the fan's just after it fails, or the steady ramp's
HORIZON = 600.0
RAMP_CROSSES = HORIZON + 600.0  # seconds after its first reading that a steady ramp crosses the threshold
FAN, RAMP = "failing fan", "steady ramp"


def main(bootstrap: str | None = None) -> None:
    """The three tables; `bootstrap` is ignored (`make bench` passes every part its cluster)."""
    args = _parse(sys.argv[1:] if __name__ == "__main__" else [])
    fleet_false_forecasts(args.devices, args.minutes)
    lead_time(args.seeds)
    cost()


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.forecast", description=__doc__.split("\n\n")[0])
    parser.add_argument("--devices", type=int, default=1000, help="devices in the large fleet (default 1000)")
    parser.add_argument("--minutes", type=int, default=60, help="simulated minutes of the fleet (default 60)")
    parser.add_argument("--seeds", type=int, default=10, help="runs per failing-fan rate (default 10)")
    return parser.parse_args(argv)


# -- 1. false forecasts over the simulator's fleet ---------------------------------------------------------------


def _ticks(devices: int, ticks: int, seed: int) -> Iterator[Readings]:
    rng = np.random.default_rng(seed)
    fleet = build_fleet(devices, rng)
    state = initial_state(fleet, rng)
    for _ in range(ticks):
        readings, state = advance(fleet, state, ABNORMAL_PROBABILITY, rng)
        yield readings


@dataclass
class _Tally:
    raised: int = 0
    readings: int = 0  # readings with a forecast
    devices: set[int] = field(default_factory=set)
    examples: list[str] = field(default_factory=list)


def fleet_false_forecasts(devices: int, minutes: int) -> None:
    ticks = minutes * 60
    rows = []
    for size in (devices, 5):
        hottest = max(float(r.temperature[~r.abnormal].max(initial=-np.inf)) for r in _ticks(size, ticks, SEED))
        threshold = hottest + MARGIN
        states = [[TrendModel(window).new_state() for _ in range(size)] for window, _ in CONFIGS]
        tallies = [_Tally() for _ in CONFIGS]
        active = [[False] * size for _ in CONFIGS]
        above = 0
        started = time.process_time()
        for tick, readings in enumerate(_ticks(size, ticks, SEED)):
            at = START + tick
            temperatures = readings.temperature.tolist()
            above += sum(t > threshold for t in temperatures)
            for config, (_, horizon) in enumerate(CONFIGS):
                tally, on, row = tallies[config], active[config], states[config]
                for device, temperature in enumerate(temperatures):
                    state = row[device]
                    state.add(at, temperature)
                    forecast = state.forecast(threshold, horizon, at)
                    if forecast is None:
                        on[device] = False
                        continue
                    tally.readings += 1
                    if not on[device]:
                        on[device] = True
                        tally.raised += 1
                        tally.devices.add(device)
                        tally.examples.append(
                            f"  device {device} at {tick} s: level {forecast.level:.1f} °C, "
                            f"{forecast.rate:+.1f} °C/min, eta {forecast.eta:.0f} s"
                        )
        cpu = time.process_time() - started
        device_hours = size * ticks / 3600
        for (window, horizon), tally in zip(CONFIGS, tallies, strict=True):
            rows.append(
                [
                    f"{size:,} devices",
                    f"{window / 60:g} m / {horizon / 60:g} m",
                    f"{hottest:.1f}",
                    f"{threshold:.1f}",
                    above,
                    tally.raised,
                    f"{tally.raised / device_hours:.4f}",
                    len(tally.devices),
                ]
            )
        print(
            f"  ({size} devices: {cpu:.0f} s CPU for {len(CONFIGS)} configurations,"
            f" {cpu / (size * ticks * len(CONFIGS)) * 1e6:.1f} µs per reading and answer)",
            file=sys.stderr,
        )
        for tally in tallies:
            for line in tally.examples[:20]:
                print(line, file=sys.stderr)
    print_table(
        f"forecast: false forecasts over {minutes} min of the simulator's fleet (spikes 5 %, 1 s ticks)",
        [
            "fleet",
            "window / horizon",
            "hottest normal °C",
            "threshold °C",
            "spikes above it",
            "forecasts raised",
            "per device-hour",
            "devices",
        ],
        rows,
    )


# -- 2. lead time on a failing fan -------------------------------------------------------------------------------


def _run(
    profile: str, rate: float, window: float, noise: str, seed: int
) -> tuple[float | None, float | None, float, bool]:
    """(lead s, estimate error s, crossing s after the failure or first reading, forecast before the failure)."""
    rng = np.random.default_rng(seed)
    if profile == FAN:
        tau = FAN_RISE / (rate / 60.0)
        changes = FAN_FAILS
        seconds = int(changes + tau * np.log(FAN_RISE / (FAN_RISE - THRESHOLD_GAP)) + 3 * 60)
    else:  # heating at `rate` since before the first reading, crossing RAMP_CROSSES after it
        changes = 0.0
        seconds = int(RAMP_CROSSES + 3 * 60)
    times = np.arange(seconds, dtype=np.float64)
    if profile == FAN:
        heat = THRESHOLD - THRESHOLD_GAP + FAN_RISE * (1.0 - np.exp(-np.maximum(times - changes, 0.0) / tau))
    else:
        heat = THRESHOLD - rate / 60.0 * (RAMP_CROSSES - times)
    if noise == WALK:  # the simulator's bounded random-walk trend
        wander = np.clip(np.cumsum(rng.uniform(-TREND_STEP, TREND_STEP, seconds)), -TREND_BOUND, TREND_BOUND)
    else:
        wander = rng.uniform(-1.0, 1.0, seconds)
    normal = heat + wander
    abnormal = rng.random(seconds) < ABNORMAL_PROBABILITY
    readings = normal + np.where(abnormal, rng.uniform(0.0, SPIKE_MAX, seconds), 0.0)
    crossing = float(times[np.argmax((normal > THRESHOLD) & ~abnormal)])
    state = TrendModel(window).new_state()
    for at, temperature in zip(times.tolist(), readings.tolist(), strict=True):
        state.add(START + at, temperature)
        forecast = state.forecast(THRESHOLD, HORIZON, START + at)
        if forecast is not None:
            if at < changes:
                return None, None, crossing - changes, True
            if at >= crossing:
                break
            return crossing - at, forecast.eta - (crossing - at), crossing - changes, False
    return None, None, crossing - changes, False


def lead_time(seeds: int) -> None:
    rows = []
    for profile in (FAN, RAMP):
        for noise in (WALK, SENSOR):
            for window, _ in CONFIGS:
                for rate in RATES:
                    runs = [_run(profile, rate, window, noise, seed) for seed in range(seeds)]
                    leads = [lead for lead, _, _, _ in runs if lead is not None]
                    errors = [abs(error) for _, error, _, _ in runs if error is not None]
                    rows.append(
                        [
                            profile,
                            noise,
                            f"{window / 60:g} m",
                            f"{rate:g}",
                            f"{statistics.median(c for _, _, c, _ in runs):.0f}",
                            f"{len(leads)}/{seeds}",
                            f"{statistics.median(leads):.0f}" if leads else "-",
                            f"{min(leads):.0f}" if leads else "-",
                            f"{statistics.median(errors):.0f}" if errors else "-",
                            sum(early for _, _, _, early in runs) if profile == FAN else "-",
                        ]
                    )
    print_table(
        f"forecast: lead time (threshold {THRESHOLD_GAP:g} °C above the fan's steady level; horizon {HORIZON / 60:g} m;"
        f" 5 % spikes; {seeds} runs each)",
        [
            "profile",
            "noise",
            "window",
            "°C/min",
            "crossing s (after failure / first reading)",
            "forecast",
            "lead s (median)",
            "lead s (min)",
            "estimate error s (median)",
            "false before failure",
        ],
        rows,
    )


# -- 3. cost ----------------------------------------------------------------------------------------------------


def _cpu_per_call(calls: int, run: Callable[[], None]) -> float:
    started = time.process_time()
    run()
    return (time.process_time() - started) / calls * 1e6


def cost() -> None:
    rng = np.random.default_rng(SEED)
    count = 200_000
    times = (START + np.arange(count, dtype=np.float64)).tolist()
    quiet = (60.0 + rng.uniform(-1.0, 1.0, count)).tolist()
    hot = (THRESHOLD - 1.5 + rng.uniform(-1.0, 1.0, count)).tolist()  # steady just below: the cheap bounds skip it
    # Heating at 6 °C/min from 30 °C below to 2 °C below, over and over: every bucket gets a full fit and test.
    heating = (THRESHOLD - 30.0 + (np.arange(count) % 280) * 0.1 + rng.uniform(-1.0, 1.0, count)).tolist()

    def feed(temperatures: list[float], ask: bool) -> Callable[[], None]:
        def run() -> None:
            state = TrendModel(120.0).new_state()
            add, forecast = state.add, state.forecast
            for at, temperature in zip(times, temperatures, strict=True):
                add(at, temperature)
                if ask:
                    forecast(THRESHOLD, 300.0, at)

        return run

    readings = [_reading(temperature, at) for at, temperature in zip(times, quiet, strict=True)]

    def policy() -> None:
        judge, state = AlertPolicy(THRESHOLD, 300.0, 60.0).judge, DeviceState()
        for at, reading in zip(times, readings, strict=True):
            judge(state, reading, 0, at, at)

    baseline = _cpu_per_call(count, policy)
    update = _cpu_per_call(count, feed(quiet, ask=False))
    answered = _cpu_per_call(count, feed(quiet, ask=True))
    near = _cpu_per_call(count, feed(hot, ask=True))
    fitted = _cpu_per_call(count, feed(heating, ask=True))
    per_fit = (fitted - answered) * count / (count / (120.0 / BUCKETS))
    rows = [
        ["alert policy decision (baseline)", f"{baseline:.2f}", "1.00"],
        ["forecast update (add)", f"{update:.2f}", f"{update / baseline:.2f}"],
        ["update + forecast, steady device (cached answer)", f"{answered:.2f}", f"{answered / baseline:.2f}"],
        ["update + forecast, steady 1.5 °C below the threshold", f"{near:.2f}", f"{near / baseline:.2f}"],
        ["update + forecast, heating toward it (fit every bucket)", f"{fitted:.2f}", f"{fitted / baseline:.2f}"],
        [f"one fit and test (at most once per bucket, {120.0 / BUCKETS:g} s)", f"{per_fit:.0f}", "-"],
    ]
    print_table("forecast: CPU µs per reading (2 m window, 1 reading/s)", ["what", "µs", "x policy"], rows)
    state = _hour_old_state(quiet)
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    many = [_hour_old_state(quiet[:300]) for _ in range(2_000)]
    measured = (tracemalloc.get_traced_memory()[0] - before) / len(many)
    tracemalloc.stop()
    print_table(
        "forecast: memory per device",
        ["measure", "bytes"],
        [
            ["sys.getsizeof(state) after an hour", sys.getsizeof(state)],
            ["tracemalloc, 2,000 full states", f"{measured:.0f}"],
        ],
    )


def _hour_old_state(temperatures: list[float]) -> TrendState:
    state = TrendModel(120.0).new_state()
    for second, temperature in enumerate(temperatures[:3600]):
        state.add(START + second, temperature)
    state.forecast(THRESHOLD, 300.0, START + min(len(temperatures), 3600))
    return state


if __name__ == "__main__":
    main()


def _reading(temperature: float, at: float) -> TemperatureReading:
    return TemperatureReading("gpu-0", temperature, datetime.fromtimestamp(at, UTC))
