"""READINGS_SOURCE=nvml: the real publisher, the real nvidia-ml-py, and a C libnvidia-ml.so.1 built here.

Nothing of pynvml is mocked: the binding dlopen()s our stand-in through LD_LIBRARY_PATH as it would the
driver's library, and each test rewrites what the 'GPUs' report while the publisher runs. Readings are
read from --stdout (no cluster needed) except in the last test, which checks the records on the topic.
"""

from __future__ import annotations

import json
import socket
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from shared.codec import decode_reading
from tests.gpu_support import Gpu, NvmlHost, PublisherProcess, build_nvml_stand_in, eventually
from tests.integration.test_publisher import read_topic

UUID_A = "GPU-5e5ba9a0-1111-2222-3333-444455556666"
UUID_B = "GPU-0b7f3c2d-aaaa-bbbb-cccc-ddddeeeeffff"
UUID_C = "GPU-77777777-8888-9999-aaaa-bbbbccccdddd"
FULL_FIELDS = [
    "device_id", "temperature", "timestamp", "gpu_model", "host_name", "power_consume", "gpu_util",
    "gpu_uuid", "gpu_index", "slowdown_temperature", "shutdown_temperature", "clock_event_reasons",
]


@pytest.fixture(scope="session")
def stand_in_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("nvml")
    build_nvml_stand_in(folder)
    return folder


@pytest.fixture
def host(stand_in_dir: Path, tmp_path: Path) -> NvmlHost:
    host = NvmlHost(tmp_path / "nvml-state", stand_in_dir, [
        Gpu(UUID_A, "NVIDIA H100 80GB HBM3", 45, 71_234, 37, 87, 92, 0x20 | 0x4 | 0x1),
        Gpu(UUID_B, "Tesla T4 <lab>", 61, "NOT_SUPPORTED", "NOT_SUPPORTED", "NOT_SUPPORTED", 90, "NOT_SUPPORTED"),
    ])
    host.write()
    return host


@pytest.fixture
def processes() -> Iterator[list[PublisherProcess]]:
    started: list[PublisherProcess] = []
    yield started
    for process in started:
        process.kill()


def start(processes: list[PublisherProcess], tmp_path: Path, env: dict[str, str], *args: str) -> PublisherProcess:
    process = PublisherProcess(tmp_path, {"READINGS_SOURCE": "nvml", "HOST_NAME": "node-a", **env}, args)
    processes.append(process)
    return process


def metric(process: PublisherProcess, name: str, labels: dict[str, str]) -> float | None:
    port = eventually(10, lambda: next((e["port"] for e in process.log() if "port" in e), None))
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and sample.labels == labels:
                return float(sample.value)
    return None


def test_every_field_of_every_gpu_as_nvml_reports_it(
    host: NvmlHost, tmp_path: Path, processes: list[PublisherProcess]
) -> None:
    """One record per GPU and tick: UUID as device_id, name, HOST_NAME, °C, W from mW, %, the GPU's own limits and
    its active slowdown reasons by name; what a GPU does not support is left out, not zero."""
    publisher = start(processes, tmp_path, host.env, "--stdout", "--ticks", "3")
    assert publisher.wait() == 0, publisher.stderr[-5:]
    readings = publisher.readings()
    assert len(readings) == 6
    first, second = readings[0], readings[1]
    assert list(first) == FULL_FIELDS
    assert {k: v for k, v in first.items() if k != "timestamp"} == {
        "device_id": UUID_A, "temperature": 45, "gpu_model": "NVIDIA H100 80GB HBM3", "host_name": "node-a",
        "power_consume": 71.234, "gpu_util": 37, "gpu_uuid": UUID_A, "gpu_index": 0, "slowdown_temperature": 87,
        "shutdown_temperature": 92, "clock_event_reasons": ["sw_power_cap", "sw_thermal_slowdown"],
    }
    assert {k: v for k, v in second.items() if k != "timestamp"} == {
        "device_id": UUID_B, "temperature": 61, "gpu_model": "Tesla T4 <lab>", "host_name": "node-a",
        "gpu_uuid": UUID_B, "gpu_index": 1, "shutdown_temperature": 90,
    }
    assert b'"gpu_model":"Tesla T4 \\u003clab\\u003e"' in publisher.lines[1], "escaped as Go escapes it"
    assert b'"temperature":45,' in publisher.lines[0], "an integral float64, as Go writes it"
    for line in publisher.lines:
        reading = decode_reading(line)  # what the alerter reads
        assert reading.device_id in {UUID_A, UUID_B}
    assert len({r["timestamp"] for r in readings}) == 6


def test_nvml_devices_selects_by_index_or_uuid(
    host: NvmlHost, tmp_path: Path, processes: list[PublisherProcess]
) -> None:
    """NVML_DEVICES limits the readings to the GPUs it names, by UUID or by index."""
    by_uuid = start(processes, tmp_path, {**host.env, "NVML_DEVICES": UUID_B}, "--stdout", "--ticks", "2")
    by_index = start(processes, tmp_path, {**host.env, "NVML_DEVICES": "0"}, "--stdout", "--ticks", "2")
    assert by_uuid.wait() == 0
    assert by_index.wait() == 0
    assert [r["device_id"] for r in by_uuid.readings()] == [UUID_B, UUID_B]
    assert [r["device_id"] for r in by_index.readings()] == [UUID_A, UUID_A]


def test_a_lost_gpu_is_logged_once_counted_and_picked_up_again_and_new_gpus_join(
    host: NvmlHost, tmp_path: Path, processes: list[PublisherProcess]
) -> None:
    """GPU 1 falls off the bus: GPU 0 keeps publishing, one warning however long it lasts, a count by reason;
    when it comes back it publishes again (one line), and a third GPU that appears is read from then on."""
    publisher = start(processes, tmp_path, {**host.env, "INTERVAL_MS": "100"}, "--stdout")

    def count(uuid: str) -> int:
        return sum(1 for r in publisher.readings() if r["device_id"] == uuid)

    eventually(20, lambda: count(UUID_B) >= 2)
    host.gpus[1].handle = "GPU_IS_LOST"
    host.write()
    lost_at = eventually(10, lambda: next((i for i, e in enumerate(publisher.log()) if "GPU_IS_LOST" in e["event"]),
                                          None))
    b_before, a_before = count(UUID_B), count(UUID_A)
    eventually(10, lambda: count(UUID_A) >= a_before + 10)  # ten more ticks of GPU 0 ...
    assert count(UUID_B) <= b_before + 1  # ... and none of GPU 1 (one may have been read before the change)
    lost = metric(publisher, "gpu_publisher_source_errors_total", {"source": "nvml", "reason": "GPU_IS_LOST"})
    assert lost is not None
    assert lost >= 10
    host.gpus[1].handle = "OK"
    host.gpus.append(Gpu(UUID_C, "NVIDIA A100-SXM4-80GB", 50, 300_000, 99, 85, 90, 0x40))
    host.write()
    eventually(10, lambda: count(UUID_C) >= 2 and count(UUID_B) >= b_before + 2)
    assert publisher.stop() == 0
    events = [e["event"] for e in publisher.log()]
    assert sum("GPU_IS_LOST" in e for e in events) == 1, events
    back = [i for i, e in enumerate(events) if e.startswith("GPU index 1 is back after")]
    assert len(back) == 1
    assert back[0] > lost_at
    assert any(e.startswith(f"GPU index 2 found ({UUID_C}") for e in events)
    new = next(r for r in publisher.readings() if r["device_id"] == UUID_C)
    assert new["clock_event_reasons"] == ["hw_thermal_slowdown"]
    assert new["gpu_index"] == 2


def test_a_failing_reading_skips_only_that_gpu(
    host: NvmlHost, tmp_path: Path, processes: list[PublisherProcess]
) -> None:
    """An NVML error other than NOT_SUPPORTED on one GPU's value skips that GPU's reading, not the others'."""
    host.gpus[0].utilization = "UNKNOWN"
    host.write()
    publisher = start(processes, tmp_path, host.env, "--stdout", "--ticks", "3")
    assert publisher.wait() == 0
    assert [r["device_id"] for r in publisher.readings()] == [UUID_B] * 3
    assert sum("NVML_ERROR_UNKNOWN" in e["event"] for e in publisher.log()) == 1


@pytest.mark.parametrize(
    ("setup", "expected"),
    [
        ("no-library", "the NVML library libnvidia-ml.so.1 was not found"),
        ("no-driver", "the NVIDIA driver is not loaded (NVML_ERROR_DRIVER_NOT_LOADED)"),
    ],
)
def test_no_library_or_no_driver_exits_2_with_one_line_before_kafka(
    host: NvmlHost, tmp_path: Path, processes: list[PublisherProcess], setup: str, expected: str
) -> None:
    """Without NVML or its driver the publisher says so in one line and exits 2, never trying the cluster."""
    env = dict(host.env)
    if setup == "no-library":
        env["LD_LIBRARY_PATH"] = str(tmp_path / "empty")
    else:
        host.init = "DRIVER_NOT_LOADED"
        host.write()
    with socket.socket() as listener:  # a 'broker' that would see any connection attempt
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        listener.settimeout(0.5)
        publisher = start(processes, tmp_path, {**env, "REDPANDA_BROKERS": f"127.0.0.1:{listener.getsockname()[1]}"})
        assert publisher.wait() == 2
        with pytest.raises(TimeoutError):
            listener.accept()
    lines = [line.decode() for line in publisher.stderr]
    assert len(lines) == 1, lines
    assert lines[0].startswith("gpu-temp-publisher: cannot read GPUs (READINGS_SOURCE=nvml): ")
    assert expected in lines[0]


@pytest.mark.integration
def test_nvml_readings_land_on_the_topic_keyed_by_uuid(
    host: NvmlHost, tmp_path: Path, processes: list[PublisherProcess], kafka_bootstrap: str, unique: str
) -> None:
    """Against the real cluster: every record is the GPU's reading with every field, keyed by its UUID."""
    topic = f"readings-{unique}"
    env = {**host.env, "REDPANDA_BROKERS": kafka_bootstrap, "REDPANDA_TOPIC": topic, "INTERVAL_MS": "50"}
    publisher = start(processes, tmp_path, env, "--ticks", "4")
    assert publisher.wait(90) == 0, publisher.stderr[-5:]
    records = read_topic(kafka_bootstrap, topic)
    assert len(records) == 8
    by_key: dict[bytes, list[dict[str, Any]]] = {}
    for record in sorted(records, key=lambda r: (r.partition, r.offset)):
        by_key.setdefault(record.key, []).append(json.loads(record.value))
    assert set(by_key) == {UUID_A.encode(), UUID_B.encode()}
    a = by_key[UUID_A.encode()][0]
    assert list(a) == FULL_FIELDS
    assert (a["temperature"], a["power_consume"], a["gpu_util"], a["gpu_index"]) == (45, 71.234, 37, 0)
    b = by_key[UUID_B.encode()][0]
    assert "power_consume" not in b
    assert "gpu_util" not in b
    assert b["shutdown_temperature"] == 90
