"""READINGS_SOURCE=dcgm: the real publisher scraping real HTTP servers that serve dcgm-exporter's text format."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.gpu_support import DcgmExporterStandIn, PublisherProcess, dcgm_page, eventually
from tests.integration.test_publisher import read_topic, socket_on_free_port
from tests.integration.test_publisher_nvml import metric

NODE_A = [
    {"index": 0, "uuid": "GPU-a0000000-0000", "model": "NVIDIA H100 80GB HBM3", "temp": 51, "power": 312.25,
     "util": 88, "mem_temp": 60},
    {"index": 1, "uuid": "GPU-a1111111-1111", "model": "NVIDIA H100 80GB HBM3", "temp": 48, "power": 95.5,
     "util": 0, "mem_temp": 9223372036854775794},
]
NODE_B = [  # the same indices on another host: only the UUIDs tell the GPUs apart
    {"index": 0, "uuid": "GPU-b0000000-0000", "model": "NVIDIA L40S", "temp": 66, "power": 250.0, "util": 97},
]


@pytest.fixture
def exporter() -> Iterator[DcgmExporterStandIn]:
    with DcgmExporterStandIn() as server:
        server.pages["/a/metrics"] = dcgm_page("node-a", NODE_A)
        server.pages["/b/metrics"] = dcgm_page("node-b", NODE_B, hostname_label="hostname")
        yield server


@pytest.fixture
def processes() -> Iterator[list[PublisherProcess]]:
    started: list[PublisherProcess] = []
    yield started
    for process in started:
        process.kill()


def start(processes: list[PublisherProcess], tmp_path: Path, urls: list[str], *args: str,
          **env: str) -> PublisherProcess:
    process = PublisherProcess(
        tmp_path, {"READINGS_SOURCE": "dcgm", "DCGM_EXPORTER_URLS": ",".join(urls), **env}, args)
    processes.append(process)
    return process


def test_two_hosts_sharing_gpu_indices_give_distinct_devices_with_every_field(
    exporter: DcgmExporterStandIn, tmp_path: Path, processes: list[PublisherProcess]
) -> None:
    """Each GPU of each endpoint is one reading per tick, keyed by UUID though indices repeat across hosts."""
    urls = [exporter.url("/a/metrics"), exporter.url("/b/metrics")]
    publisher = start(processes, tmp_path, urls, "--stdout", "--ticks", "2")
    assert publisher.wait() == 0, publisher.stderr[-5:]
    readings = publisher.readings()
    assert [r["device_id"] for r in readings] == ["GPU-a0000000-0000", "GPU-a1111111-1111", "GPU-b0000000-0000"] * 2
    first = {k: v for k, v in readings[0].items() if k != "timestamp"}
    assert first == {
        "device_id": "GPU-a0000000-0000", "temperature": 51, "gpu_model": "NVIDIA H100 80GB HBM3",
        "host_name": "node-a", "power_consume": 312.25, "gpu_util": 88, "gpu_uuid": "GPU-a0000000-0000",
        "gpu_index": 0, "memory_temperature": 60,
    }
    assert "memory_temperature" not in readings[1], "DCGM's blank is left out"
    assert (readings[2]["host_name"], readings[2]["gpu_index"]) == ("node-b", 0)


def test_a_down_or_slow_endpoint_does_not_stall_the_others_and_changes_are_logged_once(
    exporter: DcgmExporterStandIn, tmp_path: Path, processes: list[PublisherProcess]
) -> None:
    """With one endpoint refusing connections and one answering after the timeout, the healthy one is read every
    tick with its changing values; each bad endpoint gets one warning and a count, and one line when it is back."""
    exporter.delay["/slow/metrics"] = 3.0
    exporter.pages["/slow/metrics"] = dcgm_page("node-s", NODE_B)
    with socket_on_free_port() as down_port:
        urls = [f"http://127.0.0.1:{down_port}/metrics", exporter.url("/slow/metrics"), exporter.url("/a/metrics")]
        publisher = start(processes, tmp_path, urls, "--stdout", INTERVAL_MS="200", DCGM_SCRAPE_TIMEOUT="300ms")

        def temperatures() -> list[float]:
            return [r["temperature"] for r in publisher.readings() if r["device_id"] == "GPU-a0000000-0000"]

        eventually(20, lambda: len(temperatures()) >= 3)
        exporter.pages["/a/metrics"] = dcgm_page("node-a", [{**NODE_A[0], "temp": 93}, NODE_A[1]])
        eventually(10, lambda: temperatures()[-1] == 93)
        started = time.monotonic()
        before = len(temperatures())
        eventually(10, lambda: len(temperatures()) >= before + 5)
        assert time.monotonic() - started < 5 * 0.6, "five ticks, each bounded by the 300 ms timeout"
        refused = metric(publisher, "gpu_publisher_source_errors_total", {"source": "dcgm", "reason": "unreachable"})
        slow = metric(publisher, "gpu_publisher_source_errors_total", {"source": "dcgm", "reason": "timeout"})
        assert refused is not None
        assert refused >= 5
        assert slow is not None
        assert slow >= 5
        exporter.delay["/slow/metrics"] = 0.0
        eventually(10, lambda: any(r["device_id"] == "GPU-b0000000-0000" for r in publisher.readings()))
    assert publisher.stop() == 0
    events = [e["event"] for e in publisher.log()]
    assert sum(f"127.0.0.1:{down_port}" in e and "cannot connect" in e for e in events) == 1, events
    assert sum("/slow/metrics" in e and "no answer within 0.3s" in e for e in events) == 1
    assert sum("/slow/metrics is back after" in e for e in events) == 1
    assert not [e for e in events if "Traceback" in e]


def test_a_page_that_is_not_the_text_format_is_a_counted_state_not_a_crash(
    exporter: DcgmExporterStandIn, tmp_path: Path, processes: list[PublisherProcess]
) -> None:
    """Garbage, a 404 or a huge blank page from an endpoint: one warning each, readings from the others go on."""
    exporter.pages["/junk/metrics"] = "DCGM_FI_DEV_GPU_TEMP{gpu=\"0\" 12 {{{\n\x00\n"
    urls = [exporter.url("/junk/metrics"), exporter.url("/missing/metrics"), exporter.url("/a/metrics")]
    publisher = start(processes, tmp_path, urls, "--stdout", "--ticks", "3", INTERVAL_MS="100")
    assert publisher.wait() == 0
    assert len(publisher.readings()) == 6
    events = [e["event"] for e in publisher.log()]
    assert sum("/junk/metrics" in e and "not the Prometheus text format" in e for e in events) == 1
    assert sum("/missing/metrics" in e and "HTTP 404" in e for e in events) == 1


@pytest.mark.integration
def test_dcgm_readings_land_on_the_topic(
    exporter: DcgmExporterStandIn, tmp_path: Path, processes: list[PublisherProcess], kafka_bootstrap: str,
    unique: str,
) -> None:
    """Against the real cluster: one record per GPU and tick, keyed by UUID, with the exporter's values."""
    topic = f"readings-{unique}"
    urls = [exporter.url("/a/metrics"), exporter.url("/b/metrics")]
    publisher = start(processes, tmp_path, urls, "--ticks", "3", REDPANDA_BROKERS=kafka_bootstrap,
                      REDPANDA_TOPIC=topic, INTERVAL_MS="50")
    assert publisher.wait(90) == 0, publisher.stderr[-5:]
    records = read_topic(kafka_bootstrap, topic)
    assert len(records) == 9
    for record in records:
        value = json.loads(record.value)
        assert record.key.decode() == value["device_id"] == value["gpu_uuid"]
    b = next(json.loads(r.value) for r in records if r.key == b"GPU-b0000000-0000")
    assert (b["temperature"], b["power_consume"], b["gpu_util"], b["host_name"]) == (66, 250, 97, "node-b")
