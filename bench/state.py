"""The alerter's per-device state under a flood of distinct device ids: memory held, what is forgotten, the bound.

Issue 10 found 1,000,000 distinct hot device ids held 180-410 MiB for good.
This drives the real domain (alerter.domain.partition.Partitions: judge,
delivery, the sweep's scan) with 1,000,000 distinct hot ids over six
partitions, 1,000 new ids a second of event time, every alert delivered, and
measures the Python heap (tracemalloc, numpy's arrays included) held by the
device states: after the flood, after the partitions' clocks moved an hour on
(expired state forgotten), and with MAX_TRACKED_DEVICES=100,000. A second
table is the cost per device with every early-warning setting on (a forecast
trend per device), from 100,000 devices with a full window. No cluster.

    python -m bench.state [--devices 1000000]
"""

from __future__ import annotations

import argparse
import gc
import sys
import tracemalloc
from dataclasses import dataclass
from datetime import UTC, datetime

from alerter.domain.notification import Result, Status
from alerter.domain.partition import Partitions
from alerter.domain.policy import AlertPolicy
from bench.table import print_table
from shared.models import TemperatureReading

T0 = 1_800_000_000.0
PARTITIONS = 6
ORIGINAL = AlertPolicy(150.0, 300.0, 60.0)  # the defaults: none of the early-warning settings
EARLY = AlertPolicy(
    150.0,
    300.0,
    60.0,
    warning_threshold=130.0,
    forecast_horizon=300.0,
    forecast_window=120.0,
    resolve_after=60.0,
    silence_after=120.0,
)


@dataclass(frozen=True, slots=True)
class FrozenState:
    """The state as it was before (one frozen object per device, never forgotten), for the same-run comparison."""

    delivered: tuple[float, ...] = ()
    in_flight: tuple[float, ...] = ()


def main(bootstrap: str | None = None, devices: int = 1_000_000) -> None:
    """Both tables (`bootstrap` is not used: no cluster)."""
    flood(devices)
    early(devices // 10)


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.state")
    parser.add_argument("--devices", type=int, default=1_000_000)
    return parser.parse_args(argv)


def _reading(device: str, temperature: float, at: float) -> TemperatureReading:
    return TemperatureReading(device, temperature, datetime.fromtimestamp(at, UTC))


def _held(before: int) -> float:
    gc.collect()
    return (tracemalloc.get_traced_memory()[0] - before) / 2**20


def flood(devices: int) -> None:
    rows = []
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    frozen = {f"gpu-{i:07d}": FrozenState((T0 + i / 1000,)) for i in range(devices)}
    rows.append(["as before: a frozen state per id, kept for good", f"{devices:,}", _held(base), "-"])
    del frozen

    for limit in (10 * devices, 100_000):
        base = tracemalloc.get_traced_memory()[0]
        partitions = Partitions(ORIGINAL, max_devices=limit)
        owned = [partitions.assign(p) for p in range(PARTITIONS)]
        evicted = 0
        for i in range(devices):
            at = T0 + i / 1000
            partition = owned[i % PARTITIONS]
            _verdict, [alert] = partitions.judge(partition, _reading(f"gpu-{i:07d}", 180.0, at), i, at, at)
            partitions.settle(Result(alert, Status.DELIVERED))
            partition.writes -= 1  # its record acknowledged
            partition.offsets.release(alert.offset)
            if i % 10_000 == 9_999:
                evicted += partitions.over_limit()
        label = f"now, MAX_TRACKED_DEVICES={limit:,}"
        rows.append([f"{label}: after the flood", f"{partitions.tracked:,}", _held(base), f"{evicted:,}"])
        end = T0 + devices / 1000
        for partition in owned:  # read to its end for a while, an hour on: its clock follows the wall clock
            partitions.sweep(partition, end + 3600, caught_up=True, scan=False)
            partitions.sweep(partition, end + 3610, caught_up=True, scan=True)
        rows.append([f"{label}: an hour on (a scan)", f"{partitions.tracked:,}", _held(base), "-"])
        del partitions, owned
    tracemalloc.stop()
    print_table(
        f"alerter state: {devices:,} distinct hot device ids (one alert each, delivered), {PARTITIONS} partitions",
        ["state", "devices kept", "MiB held", "evicted (limit)"],
        rows,
    )


def early(devices: int) -> None:
    """Bytes per device with every early-warning setting on: state, last reading, a forecast trend (full window)."""
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    partitions = Partitions(EARLY, max_devices=10 * devices)
    partition = partitions.assign(0)
    offset = 0
    for step in range(0, 130, 5):  # a full 2-minute window of readings, every 5 s
        at = T0 + step
        for i in range(devices):
            partitions.judge(partition, _reading(f"gpu-{i:07d}", 60.0 + (i + step) % 3, at), offset, at, at)
            offset += 1
    per_device = _held(base) * 2**20 / devices
    tracemalloc.stop()
    print_table(
        f"alerter state with every early-warning setting on: {devices:,} devices, a full forecast window each",
        ["what", "bytes per device", f"MiB per {devices:,}", "MiB per 1,000,000"],
        [["state, trend, last reading", per_device, per_device * devices / 2**20, per_device * 1e6 / 2**20]],
    )


if __name__ == "__main__":
    main(devices=_parse(sys.argv[1:]).devices)
