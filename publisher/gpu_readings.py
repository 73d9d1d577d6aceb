"""Readings of real GPUs (NVML, dcgm-exporter): the original's seven fields, then what a real GPU tells us more.

Values a GPU does not report (NVML_ERROR_NOT_SUPPORTED, a DCGM blank) are left
out of the record rather than written as zero: a consumer can tell "no power
sensor" from "0 W", and the alerter reads a reading without them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from publisher.gojson import go_object, rfc3339_nano
from publisher.sources import Tick


@dataclass(frozen=True)
class GpuReading:
    device_id: str  # the GPU's UUID: unique across a fleet, stable across restarts
    temperature: float  # °C
    unix_ns: int  # when it was read
    gpu_model: str
    host_name: str
    power_consume: float | None = None  # W
    gpu_util: float | None = None  # %
    extra: tuple[tuple[str, object], ...] = field(default=())  # more fields, in order, None = left out

    def fields(self) -> list[tuple[str, object]]:
        """The record's fields in the original's order, then the extra ones; unreported values left out."""
        fields: list[tuple[str, object]] = [
            ("device_id", self.device_id),
            ("temperature", self.temperature),
            ("timestamp", rfc3339_nano(self.unix_ns)),
            ("gpu_model", self.gpu_model),
            ("host_name", self.host_name),
            ("power_consume", self.power_consume),
            ("gpu_util", self.gpu_util),
            *self.extra,
        ]
        return [(name, value) for name, value in fields if value is not None]

    def encode(self) -> bytes:
        return go_object(self.fields())


def tick_of(readings: Sequence[GpuReading]) -> Tick:
    """A Tick of these readings, keyed by device_id."""
    return Tick(
        keys=[r.device_id.encode("utf-8", "surrogateescape") for r in readings],
        values=[r.encode() for r in readings],
        device_ids=[r.device_id for r in readings],
        models=[r.gpu_model for r in readings],
        hosts=[r.host_name for r in readings],
        temperatures=np.array([r.temperature for r in readings], dtype=np.float64),
    )
