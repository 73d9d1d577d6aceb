"""READINGS_SOURCE=dcgm: scrape dcgm-exporter endpoints (a DaemonSet on GPU nodes) and publish one reading per GPU.

Each tick every endpoint in DCGM_EXPORTER_URLS is scraped at once, each with
its own timeout (DCGM_SCRAPE_TIMEOUT), so one that is down or slow costs the
others nothing but that timeout; what it would have said is simply missing
from the tick, with one warning when it goes down and one when it is back,
and a count in gpu_publisher_source_errors_total{source="dcgm"}.

The text is parsed with prometheus_client's parser (`parse_exposition`, pure)
into readings: DCGM_FI_DEV_GPU_TEMP (°C), DCGM_FI_DEV_POWER_USAGE (W),
DCGM_FI_DEV_GPU_UTIL (%), DCGM_FI_DEV_MEMORY_TEMP (°C, when exported), one
GPU per UUID label; modelName, hostname (Hostname before dcgm-exporter 4.x's
rename) and gpu give the model, host and index. DCGM writes values it does not
have as huge sentinels (e.g. 9223372036854775794 for "not supported"): those,
and anything not a plausible number, are left out like NVML's NOT_SUPPORTED.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Final
from urllib.parse import urlsplit

import urllib3
from prometheus_client.parser import text_string_to_metric_families

from publisher.gpu_readings import GpuReading, tick_of
from publisher.health_states import StateLog
from publisher.metrics import PublisherMetrics
from publisher.sources import Tick
from shared.models import MAX_TEXT

log = logging.getLogger("publisher.dcgm")

TEMPERATURE: Final = "DCGM_FI_DEV_GPU_TEMP"
POWER: Final = "DCGM_FI_DEV_POWER_USAGE"
UTILIZATION: Final = "DCGM_FI_DEV_GPU_UTIL"
MEMORY_TEMPERATURE: Final = "DCGM_FI_DEV_MEMORY_TEMP"
_FIELDS: Final = {TEMPERATURE: "temperature", POWER: "power", UTILIZATION: "util", MEMORY_TEMPERATURE: "memory"}
# DCGM's blank and error values start at 2**31 - 16 (int32) and 2**47 (fp64); no reading comes near.
_DCGM_BLANK: Final = 2_147_483_632.0
_LIMITS: Final = {"temperature": (-273.15, 10_000.0), "memory": (-273.15, 10_000.0), "power": (0.0, 1_000_000.0),
                  "util": (0.0, 100.0)}
MAX_RESPONSE_BYTES: Final = 16 * 1024 * 1024


class ScrapeError(Exception):
    """An endpoint that could not be read; `reason` is a short label (unreachable, timeout, http_503, ...)."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


@dataclass
class _Gpu:
    uuid: str
    model: str = ""
    host: str = ""
    index: int | None = None
    values: dict[str, float] | None = None


def parse_exposition(text: str, fallback_host: str, read_at: int) -> tuple[list[GpuReading], int]:
    """Readings from one dcgm-exporter page, and how many GPUs were skipped for lack of a usable temperature.

    Raises ValueError (the parser's) for text that is not the Prometheus text format.
    """
    gpus: dict[str, _Gpu] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            uuid = sample.labels.get("UUID") or sample.labels.get("uuid")
            if not uuid or not sample.name.startswith("DCGM_FI_") or "GPU_I_ID" in sample.labels:
                continue  # not a GPU's field (MIG instances: the GPU's own rows count)
            gpu = gpus.setdefault(uuid, _Gpu(uuid))
            field = _FIELDS.get(sample.name)
            if field is None:
                continue
            gpu.model = gpu.model or sample.labels.get("modelName", "")
            gpu.host = gpu.host or sample.labels.get("hostname") or sample.labels.get("Hostname") or ""
            index = sample.labels.get("gpu", "")
            gpu.index = int(index) if index.isdigit() and len(index) < 6 else gpu.index
            low, high = _LIMITS[field]
            if gpu.values is None:
                gpu.values = {}
            value = float(sample.value)
            if math.isfinite(value) and value < _DCGM_BLANK and low <= value <= high:
                gpu.values[field] = value
    readings, skipped = [], 0
    for gpu in gpus.values():
        values = gpu.values or {}
        if "temperature" not in values or max(len(gpu.uuid), len(gpu.model), len(gpu.host)) > MAX_TEXT:
            skipped += 1
            continue
        readings.append(GpuReading(
            device_id=gpu.uuid,
            temperature=values["temperature"],
            unix_ns=read_at,
            gpu_model=gpu.model,
            host_name=gpu.host or fallback_host,
            power_consume=values.get("power"),
            gpu_util=values.get("util"),
            extra=(("gpu_uuid", gpu.uuid), ("gpu_index", gpu.index), ("memory_temperature", values.get("memory"))),
        ))
    return readings, skipped


def fetch(pool: urllib3.PoolManager, url: str, timeout: float) -> str:
    """The page at `url` as text; ScrapeError for anything but a 200 with a readable body of sane size."""
    try:
        response = pool.request(
            "GET", url, timeout=urllib3.Timeout(total=timeout), retries=False, preload_content=False,
            headers={"Accept": "text/plain"},
        )
        try:
            body = response.read(MAX_RESPONSE_BYTES + 1)
        finally:
            response.release_conn()
    except urllib3.exceptions.NewConnectionError:  # before TimeoutError: urllib3 derives it from a timeout
        raise ScrapeError("unreachable", "cannot connect (connection refused or no route)") from None
    except urllib3.exceptions.TimeoutError:
        raise ScrapeError("timeout", f"no answer within {timeout:g}s") from None
    except urllib3.exceptions.HTTPError as error:
        raise ScrapeError("unreachable", f"cannot connect ({type(error).__name__})") from None
    if response.status != 200:
        raise ScrapeError(f"http_{response.status}", f"HTTP {response.status}")
    if len(body) > MAX_RESPONSE_BYTES:
        raise ScrapeError("too_large", f"page larger than {MAX_RESPONSE_BYTES // (1024 * 1024)} MiB")
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        raise ScrapeError("unparsable", "page is not UTF-8 text") from None


class DcgmSource:
    """One reading per GPU per tick from every dcgm-exporter endpoint that answered in time."""

    name = "dcgm"

    def __init__(
        self,
        urls: Sequence[str],
        timeout: float,
        metrics: PublisherMetrics,
        clock_ns: Callable[[], int] = time.time_ns,
    ) -> None:
        self._urls = tuple(urls)
        self._timeout = timeout
        self._metrics = metrics
        self._clock_ns = clock_ns
        self._pool = urllib3.PoolManager(num_pools=max(4, len(urls)), maxsize=1)
        self._executor = ThreadPoolExecutor(max_workers=min(32, len(urls)), thread_name_prefix="dcgm-scrape")
        self._states = StateLog(log, "dcgm-exporter")
        self._devices = 0

    @property
    def devices(self) -> int:
        return self._devices

    def read(self) -> Tick:
        readings = [r for batch in self._executor.map(self._scrape, self._urls) for r in batch]
        self._devices = len(readings)
        return tick_of(readings)

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
        self._pool.clear()

    def _scrape(self, url: str) -> Iterable[GpuReading]:
        try:
            text = fetch(self._pool, url, self._timeout)
            read_at = self._clock_ns()
            readings, skipped = parse_exposition(text, urlsplit(url).hostname or "", read_at)
        except ScrapeError as error:
            self._failed(url, error.reason, str(error))
            return ()
        except (ValueError, TypeError, IndexError, KeyError) as error:  # the parser's verdict on hostile text
            self._failed(url, "unparsable", f"not the Prometheus text format ({type(error).__name__})")
            return ()
        if skipped:
            self._metrics.source_errors.labels(self.name, "no_temperature").inc(skipped)
        self._states.ok(url, f"{len(readings)} GPU{'' if len(readings) == 1 else 's'}")
        return readings

    def _failed(self, url: str, reason: str, detail: str) -> None:
        self._metrics.source_errors.labels(self.name, reason).inc()
        self._states.failed(url, reason, detail)
