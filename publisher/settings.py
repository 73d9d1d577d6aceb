"""The publisher's settings: the Go original's variables and defaults, plus ours, checked at start-up.

Every bad value raises ConfigError naming the variable and the form it
expects; so does an unknown command-line option. The entry point turns that
into one line on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import dataclasses
import re
import socket
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final
from urllib.parse import urlsplit

from shared import settings_help
from shared.config import CommonSettings, ConfigError, Env, SettingDoc, load_common
from shared.models import MAX_TEXT

SERVICE: Final = "gpu-temp-publisher"
DEFAULT_METRICS_PORT: Final = 8701  # clear of node_exporter (9100) and the 9100-9999 exporter range
HIGH_TEMPERATURE: Final = 80.0  # °C above which a published reading is logged, as in the original
MAX_DEVICES: Final = 1_000_000
MAX_INTERVAL_MS: Final = 24 * 3600 * 1000
# librdkafka's own ceiling for its queue length.
MAX_QUEUE_MESSAGES: Final = 2_147_483_647
MAX_DELIVERY_TIMEOUT: Final = 596 * 3600.0  # 596h, just under message.timeout.ms's 2^31-1 ms
MAX_TICKS: Final = 10**12  # more than 30,000 years of one-second ticks
MAX_SEED: Final = 2**128 - 1  # numpy's SeedSequence draws 128-bit seeds, so a logged seed can be given back
MAX_FLUSH_TIMEOUT: Final = 3600.0
_TOPIC_NAME = re.compile(r"[A-Za-z0-9._-]{1,249}")
SOURCES: Final = ("simulator", "nvml", "dcgm")
MAX_SCRAPE_TIMEOUT: Final = 60.0
_GPU_UUID = re.compile(r"(GPU|MIG)-[0-9A-Za-z-]{1,80}")


@dataclass(frozen=True)
class FanSettings:
    """simulator: GPUs whose fan fails (the early-warning demo's heating GPU)."""

    devices: tuple[str, ...]  # device ids; empty = none
    rate: float = 25.0  # °C per minute while it heats
    heat_for: float = 222.0  # seconds each failure lasts


@dataclass(frozen=True)
class SourceSettings:
    """Where readings come from (READINGS_SOURCE) and what that source needs."""

    kind: str  # one of SOURCES
    host_name: str  # HOST_NAME, or this machine's host name (real sources)
    nvml_devices: tuple[str, ...]  # indices or UUIDs; empty = every GPU
    dcgm_urls: tuple[str, ...]  # dcgm-exporter /metrics URLs
    scrape_timeout: float  # seconds per dcgm-exporter request
    fans: FanSettings = field(default_factory=lambda: FanSettings(()))  # simulator only



@dataclass(frozen=True)
class PublisherSettings:
    common: CommonSettings
    topic: str
    num_devices: int
    interval: float  # seconds between ticks; 0 = as fast as possible
    abnormal_probability: float
    seed: int | None  # None: a fresh seed each run (logged, so the run can be repeated)
    max_ticks: int | None  # None: until stopped
    topic_partitions: int
    flush_timeout: float  # seconds granted to deliver what is buffered at shutdown
    max_buffered_readings: int  # readings waiting for the cluster before the ticker pauses
    delivery_timeout: float  # seconds a reading may wait for delivery; 0 = no limit
    source: SourceSettings
    stdout: bool  # --stdout: print JSON lines instead of producing to Kafka
    device_series_limit: int  # per-device temperature series exported up to this many devices


def load_settings(env: Env, argv: Sequence[str] = ()) -> PublisherSettings:
    args = _parse_args(argv)
    topic = env.string("REDPANDA_TOPIC", "gpu-temperature", help="topic the readings are produced to")
    if not _TOPIC_NAME.fullmatch(topic) or topic in {".", ".."}:
        raise ConfigError(f"REDPANDA_TOPIC={topic!r}: expected a topic name of 1 to 249 letters, digits, '.', '_', '-'")
    num_devices = _bounded(env, "NUM_DEVICES", 5, 1, MAX_DEVICES, help="simulated GPUs (READINGS_SOURCE=simulator)")
    interval = _bounded(
        env, "INTERVAL_MS", 1000, 0, MAX_INTERVAL_MS, unit="ms",
        help="milliseconds between ticks (one reading per GPU each); 0 = as fast as possible",
    )
    abnormal_probability = env.number(
        "ABNORMAL_PROBABILITY", 0.05, minimum=0.0, maximum=1.0,
        help="chance that a simulated reading is abnormal: a spike of up to +100°C",
    )
    env.document(
        "SIMULATOR_SEED", "", "makes the simulated readings (not their timestamps) the same every run; unset = a"
        " fresh seed each run, logged so the run can be repeated", accepts="an integer from 0 to 2**128-1",
    )
    seed_text = env.raw("SIMULATOR_SEED")
    seed = None if seed_text is None else env.integer("SIMULATOR_SEED", 0, minimum=0, maximum=MAX_SEED)
    max_ticks = env.integer(
        "MAX_TICKS", 0, minimum=0, maximum=MAX_TICKS, help="stop after this many ticks (like --ticks); 0 = never"
    ) or None
    if args.ticks is not None:
        max_ticks = args.ticks
    max_buffered = _bounded(
        env, "MAX_BUFFERED_READINGS", 500_000, 1, MAX_QUEUE_MESSAGES // 2,
        help="readings waiting for the cluster at which the ticker pauses until half are delivered (none is"
        " dropped); at least NUM_DEVICES",
    )
    if max_buffered < num_devices:
        raise ConfigError(
            f"MAX_BUFFERED_READINGS={max_buffered}: expected an integer >= NUM_DEVICES ({num_devices}),"
            " so that one tick fits in the buffer"
        )
    delivery_timeout = env.duration(
        "DELIVERY_TIMEOUT", 0.0, maximum=MAX_DELIVERY_TIMEOUT,
        help="how long a reading may wait for delivery before it counts as failed; 0 = no limit (readings wait out"
        " an outage in the buffer)",
    )
    topic_partitions = env.integer(
        "TOPIC_PARTITIONS", 6, minimum=1, maximum=10_000, help="partitions of the topic when the publisher creates it"
    )
    flush_timeout = env.duration(
        "FLUSH_TIMEOUT", 30.0, maximum=MAX_FLUSH_TIMEOUT, help="how long shutdown waits for buffered readings"
    )
    source = load_source(env)
    device_series_limit = env.integer(
        "METRICS_DEVICE_SERIES_LIMIT", 10_000, minimum=0, maximum=MAX_DEVICES,
        help="export gpu_temperature_celsius{device,model,host} only while a tick holds at most this many devices"
        " (a scrape costs about 12 µs per series); 0 = never",
        unit="devices",
    )
    common = load_common(env, default_metrics_port=DEFAULT_METRICS_PORT)
    if args.stdout and env.raw("METRICS_PORT") is None:  # a quick look next to a running publisher: any free port
        common = dataclasses.replace(common, metrics_port=0)
    return PublisherSettings(
        common=common,
        topic=topic,
        num_devices=num_devices,
        interval=interval / 1000,
        abnormal_probability=abnormal_probability,
        seed=seed,
        max_ticks=max_ticks,
        topic_partitions=topic_partitions,
        flush_timeout=flush_timeout,
        max_buffered_readings=max_buffered,
        delivery_timeout=delivery_timeout,
        source=source,
        stdout=args.stdout,
        device_series_limit=device_series_limit,
    )


def load_source(env: Env) -> SourceSettings:
    """READINGS_SOURCE and the settings of the chosen source (those of the others are not checked)."""
    kind = env.choice(
        "READINGS_SOURCE", "simulator", SOURCES,
        help="simulator: simulated GPUs (NUM_DEVICES...); nvml: this machine's NVIDIA GPUs through libnvidia-ml.so.1;"
        " dcgm: scrape dcgm-exporter endpoints (DCGM_EXPORTER_URLS)",
    )
    host_name = env.string(
        "HOST_NAME", "", help="host_name of nvml readings (their device_id is the GPU's UUID); unset = this machine's"
        " host name (dcgm readings take the exporter's hostname label, else the URL's host)",
    ) or socket.gethostname()
    if len(host_name) > MAX_TEXT:
        raise ConfigError(f"HOST_NAME: expected at most {MAX_TEXT} characters")
    devices_text = env.string(
        "NVML_DEVICES", "", help="nvml: comma-separated GPU indices or UUIDs to read; empty = every GPU",
    )
    devices = tuple(d.strip() for d in devices_text.split(",") if d.strip())
    for device in devices:
        if not (device.isdigit() and int(device) < 1024) and not _GPU_UUID.fullmatch(device):
            raise ConfigError(f"NVML_DEVICES={devices_text!r}: expected GPU indices (0, 1, ...) or UUIDs (GPU-...)")
    urls_text = env.string(
        "DCGM_EXPORTER_URLS", "", help="dcgm: comma-separated dcgm-exporter /metrics URLs, scraped every tick",
    )
    urls = tuple(u.strip() for u in urls_text.split(",") if u.strip())
    for url in urls:
        parts = urlsplit(url)
        if parts.scheme not in {"http", "https"} or not parts.hostname:
            raise ConfigError(f"DCGM_EXPORTER_URLS={urls_text!r}: expected http(s)://host:port/metrics URLs")
    if kind == "dcgm" and not urls:
        raise ConfigError("DCGM_EXPORTER_URLS is not set: READINGS_SOURCE=dcgm needs at least one /metrics URL")
    timeout = env.duration(
        "DCGM_SCRAPE_TIMEOUT", 2.0, minimum=0.01, maximum=MAX_SCRAPE_TIMEOUT,
        help="dcgm: how long one endpoint may take to answer a scrape",
    )
    return SourceSettings(kind, host_name, devices, urls, timeout, _fans(env))


def _fans(env: Env) -> FanSettings:
    text = env.string(
        "FAILING_FANS", "", help="simulator: comma-separated device ids (gpu-0000) whose fan fails from the first tick"
        " and again 5m after each recovery: they heat steadily, then cool again (the early-warning demo); unset = none",
    )
    devices = tuple(d.strip() for d in text.split(",") if d.strip())
    if any(len(d) > MAX_TEXT for d in devices):
        raise ConfigError(f"FAILING_FANS: expected device ids of at most {MAX_TEXT} characters")
    rate = env.number(
        "FAN_HEAT_RATE", 25.0, minimum=0.0, maximum=600.0, exclusive_minimum=True, unit="°C/min",
        help="simulator: how fast a GPU with a failing fan heats",
    )
    heat_for = env.duration(
        "FAN_FAILURE_FOR", 222.0, minimum=1.0, maximum=24 * 3600.0,
        help="simulator: how long each fan failure lasts before the fan recovers",
    )
    return FanSettings(devices, rate, heat_for)


def _bounded(env: Env, name: str, default: int, minimum: int, maximum: int, *, help: str, unit: str = "") -> int:
    """An integer in [minimum, maximum], with the bounds written out in full in the error."""
    env.document(name, default, help, unit, f"an integer from {minimum} to {maximum:,}")
    value = env.integer(name, default, minimum=minimum)
    if value > maximum:
        raise ConfigError(f"{name}={value}: expected an integer from {minimum} to {maximum:,}")
    return value


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text!r}")
    if value > MAX_TICKS:
        raise argparse.ArgumentTypeError(f"expected an integer <= {MAX_TICKS}, got {text!r}")
    return value


def describe() -> list[SettingDoc]:
    """Every setting the publisher reads, for --help and the docs."""
    return settings_help.describe(load_settings)


def _parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = settings_help.ServiceParser(
        SERVICE,
        "Publish GPU temperature readings (simulated, from NVML or from dcgm-exporter) to Kafka, one per GPU per"
        " tick. Configured by the environment variables below.",
        describe,
    )
    parser.add_argument(
        "--ticks", type=_positive, metavar="N", help="stop after N ticks (overrides MAX_TICKS); N >= 1"
    )
    parser.add_argument(
        "--stdout", action="store_true",
        help="print each reading as a JSON line on stdout instead of producing it to Kafka (no cluster needed)",
    )
    return parser.parse_args(list(argv))
