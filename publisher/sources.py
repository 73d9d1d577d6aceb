"""Where a tick's readings come from: the simulator (default), NVML or dcgm-exporter, behind one interface.

A source hands the service one Tick per tick: the records to produce (key =
device_id, value = the JSON the original's json.Marshal would write) and, for
logs and metrics, each reading's device, model, host and temperature.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from publisher.encoding import ReadingEncoder
from publisher.gojson import Floats
from publisher.simulator import Fleet, FleetState, advance


@dataclass(frozen=True)
class Tick:
    keys: Sequence[bytes]
    values: Sequence[bytes]
    device_ids: Sequence[str]
    models: Sequence[str]
    hosts: Sequence[str]
    temperatures: Floats

    def __len__(self) -> int:
        return len(self.keys)


class ReadingSource(Protocol):
    """One tick of readings per call; `devices` is how many a tick is expected to hold (for buffer room)."""

    name: str

    @property
    def devices(self) -> int: ...

    def read(self) -> Tick: ...

    def close(self) -> None: ...


class SimulatorSource:
    """The simulated fleet (publisher.simulator), encoded a whole tick at a time."""

    name = "simulator"

    def __init__(self, fleet: Fleet, state: FleetState, abnormal_probability: float, rng: np.random.Generator,
                 encoder: ReadingEncoder | None = None) -> None:
        self._fleet = fleet
        self._state = state
        self._abnormal_probability = abnormal_probability
        self._rng = rng
        self._encoder = encoder or ReadingEncoder(fleet)

    @property
    def devices(self) -> int:
        return len(self._fleet)

    def read(self) -> Tick:
        readings, self._state = advance(self._fleet, self._state, self._abnormal_probability, self._rng)
        values = self._encoder.encode(readings)
        fleet = self._fleet
        return Tick(self._encoder.keys, values, fleet.device_ids, fleet.models, fleet.hosts, readings.temperature)

    def close(self) -> None:
        """Nothing to release."""
