"""The message contract between publisher and alerter.

Field names are the Go original's JSON names, so either side can be swapped
for the original and the topic stays readable by both. Decoding validates
every field: a reading that passes is safe to alert on and to format.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import msgspec

# Bounds reject NaN, infinities and absurd values, and cap untrusted text.
MAX_TEXT = 256
Text = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_TEXT)]
OptionalText = Annotated[str, msgspec.Meta(max_length=MAX_TEXT)]
Celsius = Annotated[float, msgspec.Meta(ge=-273.15, le=10_000.0)]
Watts = Annotated[float, msgspec.Meta(ge=0.0, le=1_000_000.0)]
Percent = Annotated[float, msgspec.Meta(ge=0.0, le=100.0)]
AwareTime = Annotated[datetime, msgspec.Meta(tz=True)]


class TemperatureReading(msgspec.Struct, frozen=True, forbid_unknown_fields=False):
    """One sample of one GPU, as published to the readings topic."""

    device_id: Text
    temperature: Celsius
    timestamp: AwareTime
    gpu_model: OptionalText = ""
    host_name: OptionalText = ""
    power_consume: Watts = 0.0
    gpu_util: Percent = 0.0
    # The GPU's own slowdown limit (the NVML source adds it); unset when the source does not know it (nor written).
    slowdown_temperature: Celsius | msgspec.UnsetType = msgspec.UNSET


class AlertEvent(msgspec.Struct, frozen=True):
    """A delivered alert: the reading plus the threshold it crossed (the original's AlertEvent)."""

    device_id: Text
    temperature: Celsius
    timestamp: AwareTime
    gpu_model: OptionalText
    host_name: OptionalText
    power_consume: Watts
    gpu_util: Percent
    temperature_threshold: float

    @classmethod
    def from_reading(cls, reading: TemperatureReading, threshold: float) -> AlertEvent:
        return cls(
            device_id=reading.device_id,
            temperature=reading.temperature,
            timestamp=reading.timestamp,
            gpu_model=reading.gpu_model,
            host_name=reading.host_name,
            power_consume=reading.power_consume,
            gpu_util=reading.gpu_util,
            temperature_threshold=threshold,
        )

    def reading(self) -> TemperatureReading:
        return TemperatureReading(
            device_id=self.device_id,
            temperature=self.temperature,
            timestamp=self.timestamp,
            gpu_model=self.gpu_model,
            host_name=self.host_name,
            power_consume=self.power_consume,
            gpu_util=self.gpu_util,
        )
