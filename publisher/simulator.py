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

The article gives the formulas but no base temperatures. Ours (MODELS, from
56 to 64 °C at 0 % load, ±4 °C per device) are chosen so that the original's
defaults alert: a spike on a GPU above about 60 % load can cross the
alerter's default threshold of 190 °C, while unloaded GPUs and normal
readings stay far below it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt

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

# Bounds that follow from the model.
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
    fleet: Fleet, state: FleetState, abnormal_probability: float, rng: np.random.Generator
) -> tuple[Readings, FleetState]:
    """One reading per device and the state after it; draws from `rng` in a fixed order (reproducible)."""
    n = len(fleet)
    target = state.target.copy()
    jumps = rng.random(n) < TARGET_JUMP_PROBABILITY
    target[jumps] = rng.uniform(0.0, 100.0, int(np.count_nonzero(jumps)))
    util = state.util + (target - state.util) * UTIL_APPROACH
    trend = np.clip(state.trend + rng.uniform(-TREND_STEP, TREND_STEP, n), -TREND_BOUND, TREND_BOUND)
    temperature = fleet.base_temperature + util * (LOAD_HEAT / 100.0) + trend
    abnormal = rng.random(n) < abnormal_probability
    temperature[abnormal] += rng.uniform(0.0, SPIKE_MAX, int(np.count_nonzero(abnormal)))
    power = util * WATTS_PER_UTIL + temperature / 4.0
    readings = Readings(temperature=temperature, power=power, util=util, abnormal=abnormal)
    return readings, FleetState(util=util, target=target, trend=trend)
