"""A tick of simulated readings to JSON record values, as the Go original's json.Marshal writes them, fast.

Each record is exactly what Go writes for the original struct (see
publisher.gojson): compact, fields in the struct's order, floats at full
precision in their shortest round-trip form, and a timestamp read from the
clock for each reading (Go calls time.Now() per reading), in RFC 3339 with
nanoseconds.

At 100,000+ readings a second the producer call itself costs about a
microsecond, so formatting must cost a fraction of that. msgspec (C) writes
each record: a small msgspec Struct whose text fields are pre-encoded once per
device (`msgspec.Raw`, escaped Go's way) and whose floats msgspec formats itself.
msgspec's shortest float text equals Go's except for integral and tiny values,
which numpy finds in one pass and which are formatted with go_float instead.
Each record is encoded straight into its own bytes (measured faster than one
encode_lines call cut at the newlines, which also leaked every record when
given an iterator in msgspec 0.22).
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from typing import Final

import msgspec
import numpy as np
import numpy.typing as npt

from publisher.gojson import Floats, Ints, go_float, go_string, needs_go_float, rfc3339_nano_many
from publisher.simulator import Fleet, Readings


class _Record(msgspec.Struct, gc=False):
    """The original's TemperatureReading, field for field and in its order (values typed as msgspec writes them)."""

    device_id: msgspec.Raw
    temperature: float | msgspec.Raw
    timestamp: str
    gpu_model: msgspec.Raw
    host_name: msgspec.Raw
    power_consume: float | msgspec.Raw
    gpu_util: float | msgspec.Raw


_encode: Final = msgspec.json.Encoder().encode


def _as_json(values: Floats) -> list[float | msgspec.Raw]:
    """Floats for msgspec to write, with Go's own text where msgspec's would differ."""
    items: list[float | msgspec.Raw] = values.tolist()
    for index in needs_go_float(values).tolist():
        items[index] = msgspec.Raw(go_float(float(values[index])))
    return items


class ReadingEncoder:
    """Record values for one fleet; `encode` turns a tick of readings into one JSON value per device."""

    def __init__(self, fleet: Fleet, clock_ns: Callable[[], int] = time.time_ns) -> None:
        self.keys: list[bytes] = [device.encode() for device in fleet.device_ids]
        self._clock_ns = clock_ns
        self._ids = [msgspec.Raw(go_string(d)) for d in fleet.device_ids]
        shared: dict[str, msgspec.Raw] = {}  # a few models and hosts, many devices: one Raw each
        self._models = [shared.setdefault(m, msgspec.Raw(go_string(m))) for m in fleet.models]
        self._hosts = [shared.setdefault("\0" + h, msgspec.Raw(go_string(h))) for h in fleet.hosts]
        self._last_ns: Ints = np.full(len(fleet), -(2**62), dtype=np.int64)

    def timestamps(self, count: int) -> Ints:
        """The clock read once per reading, in device order; each device's times strictly increase."""
        now = np.fromiter(itertools.starmap(self._clock_ns, itertools.repeat((), count)), np.int64, count)
        last = self._last_ns[:count]
        np.maximum(now, last + 1, out=now)  # a wall clock that steps back must not reorder a device's readings
        self._last_ns[:count] = now
        return now

    def encode(self, readings: Readings) -> list[bytes]:
        """One JSON value per device, in device order, each stamped with its own clock reading."""
        count = len(readings.temperature)
        temperature, power, util = _as_json(readings.temperature), _as_json(readings.power), _as_json(readings.util)
        stamps = rfc3339_nano_many(self.timestamps(count))
        records = map(_Record, self._ids, temperature, stamps, self._models, self._hosts, power, util)
        return list(map(_encode, records))


def hot_indices(temperatures: Floats, threshold: float) -> npt.NDArray[np.intp]:
    """Devices whose reading is above `threshold` (compared at full precision, as the original does)."""
    return np.flatnonzero(temperatures > threshold)
