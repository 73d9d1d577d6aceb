"""READINGS_SOURCE=nvml: this machine's NVIDIA GPUs, read through NVIDIA's own binding (nvidia-ml-py).

nvidia-ml-py loads the system's `libnvidia-ml.so.1` (LD_LIBRARY_PATH decides
which, as on every NVIDIA host and in NVIDIA's container runtime), so this
module only calls the binding. Each tick reads every selected GPU:

- device_id = the GPU's UUID: unique across a fleet (every host has a GPU 0)
  and stable across restarts and re-orderings (an index is neither);
- a value the GPU does not support (NVML_ERROR_NOT_SUPPORTED) is left out;
- a GPU that is lost (NVML_ERROR_GPU_IS_LOST) or fails gives no reading this
  tick, one warning when it changes state, a count in
  gpu_publisher_source_errors_total, and is read again next tick; GPUs that
  appear later (a larger device count) are picked up.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import time
from collections.abc import Callable
from types import ModuleType
from typing import Any, Final

from publisher.gpu_readings import GpuReading, tick_of
from publisher.health_states import StateLog
from publisher.metrics import PublisherMetrics
from publisher.sources import Tick

log = logging.getLogger("publisher.nvml")

# Clock event reasons that mean the GPU slows itself down for heat or power (nvml.h, nvmlClocksEventReason*).
CLOCK_EVENT_REASONS: Final = (
    (0x4, "sw_power_cap"),
    (0x8, "hw_slowdown"),
    (0x20, "sw_thermal_slowdown"),
    (0x40, "hw_thermal_slowdown"),
    (0x80, "hw_power_brake_slowdown"),
)
_NOT_SUPPORTED: Final = 3
_FUNCTION_NOT_FOUND: Final = 13


class NvmlUnavailable(Exception):
    """NVML cannot be used on this machine (no library, no driver); the message says which, in one line."""


@functools.cache
def _error_names() -> dict[int, str]:
    import pynvml  # noqa: PLC0415 - the binding is imported only where NVML is used

    return {
        value: name.removeprefix("NVML_ERROR_")
        for name, value in vars(pynvml).items()
        if name.startswith("NVML_ERROR_") and isinstance(value, int)
    }


def error_name(error: BaseException) -> str:
    """NVML_ERROR_GPU_IS_LOST -> `GPU_IS_LOST`: short, stable, for metric labels and state."""
    code = getattr(error, "value", None)
    return _error_names().get(code, "UNKNOWN") if isinstance(code, int) else "UNKNOWN"


def open_nvml() -> ModuleType:
    """Initialise NVML; NvmlUnavailable with one line when there is no library or no driver."""
    import pynvml  # noqa: PLC0415

    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError_LibraryNotFound:
        where = os.environ.get("LD_LIBRARY_PATH", "")
        raise NvmlUnavailable(
            "the NVML library libnvidia-ml.so.1 was not found (is the NVIDIA driver installed? "
            f"LD_LIBRARY_PATH={where!r})"
        ) from None
    except pynvml.NVMLError_DriverNotLoaded:
        raise NvmlUnavailable("the NVIDIA driver is not loaded (NVML_ERROR_DRIVER_NOT_LOADED)") from None
    except pynvml.NVMLError as error:
        raise NvmlUnavailable(f"NVML could not start: {error_name(error)} ({_text(error)})") from None
    return pynvml  # type: ignore[no-any-return]


def _text(error: BaseException) -> str:
    try:
        return str(error)
    except Exception:  # noqa: BLE001 - the library's own error text is a nicety; never let it crash a report
        return type(error).__name__


class NvmlSource:
    """All GPUs, or those NVML_DEVICES names (indices or UUIDs), one reading each per tick."""

    name = "nvml"

    def __init__(
        self,
        nvml: ModuleType,
        host_name: str,
        selection: tuple[str, ...],
        metrics: PublisherMetrics,
        clock_ns: Callable[[], int] = time.time_ns,
    ) -> None:
        self._nvml = nvml
        self._host_name = host_name
        self._selection = selection
        self._metrics = metrics
        self._clock_ns = clock_ns
        self._states = StateLog(log, "GPU")
        self._devices = len(selection) or self._count()

    @property
    def devices(self) -> int:
        return self._devices

    def read(self) -> Tick:
        targets = self._selection or tuple(str(i) for i in range(self._count()))
        self._devices = len(targets)
        readings = [reading for target in targets if (reading := self._read_gpu(target)) is not None]
        return tick_of(readings)

    def close(self) -> None:
        with contextlib.suppress(self._nvml.NVMLError):
            self._nvml.nvmlShutdown()

    def _count(self) -> int:
        try:
            return int(self._nvml.nvmlDeviceGetCount())
        except self._nvml.NVMLError as error:
            self._failed("count", error)
            return 0

    def _read_gpu(self, target: str) -> GpuReading | None:
        nvml = self._nvml
        label = f"index {target}" if target.isdigit() else target
        try:
            handle = nvml.nvmlDeviceGetHandleByIndex(int(target)) if target.isdigit() else \
                nvml.nvmlDeviceGetHandleByUUID(target)
            uuid = _decoded(nvml.nvmlDeviceGetUUID(handle))
            temperature = float(nvml.nvmlDeviceGetTemperature(handle, nvml.NVML_TEMPERATURE_GPU))
            read_at = self._clock_ns()
            name = _decoded(nvml.nvmlDeviceGetName(handle))
            index = int(nvml.nvmlDeviceGetIndex(handle))
            power = self._optional(lambda: nvml.nvmlDeviceGetPowerUsage(handle) / 1000.0)
            util = self._optional(lambda: float(nvml.nvmlDeviceGetUtilizationRates(handle).gpu))
            slowdown = self._optional(lambda: nvml.nvmlDeviceGetTemperatureThreshold(
                handle, nvml.NVML_TEMPERATURE_THRESHOLD_SLOWDOWN))
            shutdown = self._optional(lambda: nvml.nvmlDeviceGetTemperatureThreshold(
                handle, nvml.NVML_TEMPERATURE_THRESHOLD_SHUTDOWN))
            reasons = self._optional(lambda: _reason_names(self._clock_event_bits(handle)))
        except nvml.NVMLError as error:
            self._failed(label, error)
            return None
        except (UnicodeDecodeError, ValueError, TypeError, OverflowError) as error:  # bytes NVML should never send
            self._metrics.source_errors.labels(self.name, "bad_value").inc()
            self._states.failed(label, "bad_value", f"unreadable value from NVML ({type(error).__name__})")
            return None
        self._states.ok(label, f"{uuid}, {name}")
        return GpuReading(
            device_id=uuid,
            temperature=temperature,
            unix_ns=read_at,
            gpu_model=name,
            host_name=self._host_name,
            power_consume=power,
            gpu_util=util,
            extra=(
                ("gpu_uuid", uuid),
                ("gpu_index", index),
                ("slowdown_temperature", slowdown),
                ("shutdown_temperature", shutdown),
                ("clock_event_reasons", reasons),
            ),
        )

    def _optional(self, read: Callable[[], Any]) -> Any:
        """The value, or None when this GPU does not support it (other errors propagate: the GPU is in trouble)."""
        try:
            return read()
        except self._nvml.NVMLError as error:
            if getattr(error, "value", None) == _NOT_SUPPORTED:
                return None
            raise

    def _clock_event_bits(self, handle: object) -> int:
        """nvmlDeviceGetCurrentClocksEventReasons, or its older name on drivers before it existed."""
        nvml = self._nvml
        try:
            return int(nvml.nvmlDeviceGetCurrentClocksEventReasons(handle))
        except nvml.NVMLError as error:
            if getattr(error, "value", None) != _FUNCTION_NOT_FOUND:
                raise
        return int(nvml.nvmlDeviceGetCurrentClocksThrottleReasons(handle))

    def _failed(self, label: str, error: BaseException) -> None:
        reason = error_name(error)
        self._metrics.source_errors.labels(self.name, reason).inc()
        self._states.failed(label, reason, f"NVML_ERROR_{reason} ({_text(error)})")


def _decoded(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _reason_names(bits: int) -> list[str]:
    return [name for bit, name in CLOCK_EVENT_REASONS if bits & bit]
