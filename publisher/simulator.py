"""The simulated GPU fleet: pure functions of a state and a random generator, vectorized over devices.

Nothing here reads a clock or touches the network; the caller passes the
generator, so a seeded run yields the same readings every time, and tests
check the model's statistics without Kafka or sleeps. One call to `advance`
is one tick: a reading for every device, computed with whole-array numpy
operations so a fleet of 10,000 costs microseconds per device, not per call.

Per device and tick (the Go original's model):
- with probability 0.1 the utilization target jumps to U(0, 100);
- utilization moves a fixed fraction of the way toward its target;
- `trend` takes a U(-0.5, 0.5) step and stays within ±5 °C;
- temperature = base + util/100 * 40 + trend;
- with probability `abnormal_probability` the reading is abnormal: + U(0, 100);
- power = util * 3.5 + temperature / 4; gpu_util = util.

`FailingFans` (ours, for the early-warning demo) makes chosen GPUs heat
steadily and cool again, as under a failing fan: they run a steady load
(FAN_LOAD) at a steady FAN_IDLE °C, with no random walk and no abnormal
readings (their story is the fan, and a forecast needs a steady rise to be
sure of), and from `start` they heat `rate` °C per tick for `heat` ticks;
then the fan recovers and the extra heat decays (time constant COOL_TICKS),
the cycle repeating every `period` ticks.

The article gives the formulas but no base temperatures. Ours (MODELS, from
56 to 64 °C at 0 % load, ±4 °C per device) are chosen so that the original's
defaults alert: a spike on a GPU above about 60 % load can cross the
alerter's default threshold of 190 °C, while unloaded GPUs and normal
readings stay far below it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

import numpy as np
import numpy.typing as npt

from shared.config import ConfigError

if TYPE_CHECKING:
    from publisher.settings import FanSettings

Floats = npt.NDArray[np.float64]
Bools = npt.NDArray[np.bool_]

TARGET_JUMP_PROBABILITY: Final = 0.1
UTIL_APPROACH: Final = 0.2  # fraction of the gap to the target closed each tick
LOAD_HEAT: Final = 40.0  # °C added at 100 % utilization
TREND_STEP: Final = 0.5
TREND_BOUND: Final = 5.0
SPIKE_MAX: Final = 100.0  # an abnormal reading adds U(0, SPIKE_MAX)
WATTS_PER_UTIL: Final = 3.5
BASE_SPREAD: Final = 4.0  # a device's base temperature is its model's idle ± this
GPUS_PER_HOST: Final = 8
FAN_LOAD: Final = 20.0  # % utilization a GPU with a failing fan holds
FAN_IDLE: Final = 60.0  # °C it runs at while its fan works
COOL_TICKS: Final = 15.0  # ticks: the time constant of a recovered fan's cooling
MAX_FAN_HEAT: Final = 100.0  # °C a failing fan may add at most
RECOVERY: Final = 300.0  # seconds from a fan's recovery to its next failure


@dataclass(frozen=True)
class GpuModel:
    name: str  # as nvidia-smi reports it
    idle_celsius: float  # the model's `base` at 0 % load (ours: the article gives none)


MODELS: Final = (
    GpuModel("NVIDIA H100 80GB HBM3", 62.0),
    GpuModel("NVIDIA A100-SXM4-80GB", 60.0),
    GpuModel("NVIDIA L40S", 58.0),
    GpuModel("NVIDIA RTX A6000", 56.0),
    GpuModel("Tesla V100-SXM2-32GB", 64.0),
)

# Bounds that follow from the model (failing fans add up to MAX_FAN_HEAT).
MIN_TEMPERATURE: Final = min(m.idle_celsius for m in MODELS) - BASE_SPREAD - TREND_BOUND
MAX_TEMPERATURE: Final = max(m.idle_celsius for m in MODELS) + BASE_SPREAD + LOAD_HEAT + TREND_BOUND + SPIKE_MAX
MAX_POWER: Final = 100.0 * WATTS_PER_UTIL + MAX_TEMPERATURE / 4


@dataclass(frozen=True)
class Fleet:
    """What never changes about the devices: identity, placement and base temperature."""

    device_ids: tuple[str, ...]
    models: tuple[str, ...]
    hosts: tuple[str, ...]
    base_temperature: Floats

    def __len__(self) -> int:
        return len(self.device_ids)


@dataclass(frozen=True)
class FleetState:
    """What evolves from tick to tick, one array element per device."""

    util: Floats
    target: Floats
    trend: Floats


@dataclass(frozen=True)
class Readings:
    """One tick of the whole fleet, in device order."""

    temperature: Floats
    power: Floats
    util: Floats
    abnormal: Bools


@dataclass(frozen=True)
class FailingFans:
    """GPUs whose fan fails, in ticks (module docstring); pure: the heat at a tick is a function of the tick."""

    devices: Bools  # which GPUs of the fleet
    start: int  # tick of the first failure
    heat: int  # ticks each failure lasts
    rate: float  # °C per tick while it lasts
    period: int  # ticks from one failure to the next (>= heat)

    def extra_heat(self, tick: int) -> float:
        """°C the failing fans add at `tick`."""
        if tick < self.start:
            return 0.0
        phase = (tick - self.start) % self.period
        peak = min(self.rate * self.heat, MAX_FAN_HEAT)
        if phase < self.heat:
            return min(self.rate * phase, MAX_FAN_HEAT)
        return peak * math.exp(-(phase - self.heat) / COOL_TICKS)


def failing_fans(fleet: Fleet, fans: FanSettings, interval: float) -> FailingFans | None:
    """The failing fans `fans` describes, in ticks of `interval` seconds (a second when 0); None when none. An
    unknown device id is a ConfigError."""
    if not fans.devices:
        return None
    unknown = sorted(set(fans.devices) - set(fleet.device_ids))
    if unknown:
        raise ConfigError(
            f"FAILING_FANS: no simulated GPU {unknown[0]!r} (NUM_DEVICES={len(fleet)}: gpu ids {fleet.device_ids[0]}"
            f" to {fleet.device_ids[-1]})"
        )
    seconds = interval or 1.0
    heat = max(1, round(fans.heat_for / seconds))
    mask = np.isin(np.array(fleet.device_ids), np.array(fans.devices))
    return FailingFans(mask, 0, heat, fans.rate / 60 * seconds, heat + round(RECOVERY / seconds))


def build_fleet(num_devices: int, rng: np.random.Generator) -> Fleet:
    """Hosts of GPUS_PER_HOST identical GPUs each; models drawn per host, base temperatures per device."""
    if num_devices < 1:
        raise ValueError("a fleet needs at least one device")
    num_hosts = math.ceil(num_devices / GPUS_PER_HOST)
    host_models = rng.integers(0, len(MODELS), size=num_hosts)
    id_width = max(4, len(str(num_devices - 1)))
    host_width = max(2, len(str(num_hosts)))
    host_names = [f"gpu-node-{h + 1:0{host_width}d}" for h in range(num_hosts)]
    device_hosts = np.arange(num_devices) // GPUS_PER_HOST
    model_index = host_models[device_hosts]
    idle = np.array([m.idle_celsius for m in MODELS])[model_index]
    return Fleet(
        device_ids=tuple(f"gpu-{i:0{id_width}d}" for i in range(num_devices)),
        models=tuple(MODELS[i].name for i in model_index.tolist()),
        hosts=tuple(host_names[h] for h in device_hosts.tolist()),
        base_temperature=idle + rng.uniform(-BASE_SPREAD, BASE_SPREAD, size=num_devices),
    )


def initial_state(fleet: Fleet, rng: np.random.Generator) -> FleetState:
    n = len(fleet)
    return FleetState(util=rng.uniform(0.0, 100.0, n), target=rng.uniform(0.0, 100.0, n), trend=np.zeros(n))


def advance(
    fleet: Fleet,
    state: FleetState,
    abnormal_probability: float,
    rng: np.random.Generator,
    *,
    fans: FailingFans | None = None,
    tick: int = 0,
) -> tuple[Readings, FleetState]:
    """One reading per device (the `tick`-th) and the state after it; draws from `rng` in a fixed order
    (reproducible, and the same with failing fans: only their GPUs' readings change)."""
    n = len(fleet)
    target = state.target.copy()
    jumps = rng.random(n) < TARGET_JUMP_PROBABILITY
    target[jumps] = rng.uniform(0.0, 100.0, int(np.count_nonzero(jumps)))
    trend = np.clip(state.trend + rng.uniform(-TREND_STEP, TREND_STEP, n), -TREND_BOUND, TREND_BOUND)
    if fans is not None:
        target[fans.devices] = FAN_LOAD
    util = state.util + (target - state.util) * UTIL_APPROACH
    temperature = fleet.base_temperature + util * (LOAD_HEAT / 100.0) + trend
    abnormal = rng.random(n) < abnormal_probability
    temperature[abnormal] += rng.uniform(0.0, SPIKE_MAX, int(np.count_nonzero(abnormal)))
    if fans is not None:  # after every draw, so the other GPUs' readings are those of the same seed without
        temperature[fans.devices] = FAN_IDLE + fans.extra_heat(tick)
        abnormal[fans.devices] = False
    power = util * WATTS_PER_UTIL + temperature / 4.0
    readings = Readings(temperature=temperature, power=power, util=util, abnormal=abnormal)
    return readings, FleetState(util=util, target=target, trend=trend)
