"""The publisher's Prometheus metrics, updated once per tick rather than once per reading.

Counters move by a tick's worth at a time and the per-device temperature
gauge is read from the last tick's array when Prometheus scrapes, so
observability costs nothing per reading on the hot path.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence

from prometheus_client import CollectorRegistry, Counter, Gauge
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from publisher.gojson import Floats


class FleetTemperatures(Collector):
    """`gpu_temperature_celsius{device, model, host}`: each device's latest published temperature.

    One series per device, the one label set the conventions allow to grow
    with the installation (as dcgm-exporter's). A scrape costs about 12 µs and
    110 bytes per series, so past `limit` devices (METRICS_DEVICE_SERIES_LIMIT)
    the family is left empty rather than make a scrape take seconds; the fleet
    aggregates below stay.
    """

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._latest: tuple[Sequence[str], Sequence[str], Sequence[str], Floats] | None = None

    def update(self, devices: Sequence[str], models: Sequence[str], hosts: Sequence[str], values: Floats) -> None:
        """Keep references to this tick's sequences (never modified afterwards, so scrapes see one tick)."""
        self._latest = (devices, models, hosts, values)

    def collect(self) -> Iterator[Metric]:
        family = GaugeMetricFamily(
            "gpu_temperature_celsius",
            "Latest published temperature of each GPU, in degrees Celsius.",
            labels=["device", "model", "host"],
        )
        latest = self._latest
        if latest is not None and len(latest[0]) <= self._limit:
            devices, models, hosts, values = latest
            for device, model, host, value in zip(devices, models, hosts, values.tolist(), strict=True):
                family.add_metric([device, model, host], value)
        yield family


class PublisherMetrics:
    def __init__(
        self, registry: CollectorRegistry, device_series_limit: int, usual_failures: Iterable[str] = ()
    ) -> None:
        def counter(name: str, doc: str, labels: tuple[str, ...] = ()) -> Counter:
            return Counter(f"gpu_publisher_{name}", doc, labels, registry=registry)

        def gauge(name: str, doc: str) -> Gauge:
            return Gauge(f"gpu_publisher_{name}", doc, registry=registry)

        self.ticks = counter("ticks", "Ticks completed (one reading per device each).")
        self.produced = counter("readings_produced", "Readings handed to the Kafka producer.")
        self.delivered = counter("readings_delivered", "Readings acknowledged by all in-sync replicas.")
        self.delivery_errors = counter(
            "delivery_errors", "Readings whose delivery failed, by librdkafka error name.", ("reason",)
        )
        for reason in usual_failures:  # present at zero, so a rate() or an alert rule sees them before the first
            self.delivery_errors.labels(reason)
        self.high_temperature = counter(
            "high_temperature_readings", "Acknowledged readings above the HIGH TEMP log threshold (80 °C)."
        )
        self.tick_overruns = counter(
            "tick_overruns", "Ticks that ran past the next slot; the missed slots were skipped."
        )
        self.skipped_slots = counter("skipped_slots", "Tick slots skipped because a tick overran.")
        self.backpressure_pauses = counter(
            "backpressure_pauses", "Times the ticker paused because MAX_BUFFERED_READINGS were waiting."
        )
        self.backpressure_seconds = counter("backpressure_seconds", "Time the ticker spent paused by backpressure.")
        self.queue_depth = gauge("producer_queue_readings", "Readings produced but not yet acknowledged or failed.")
        self.buffer_limit = gauge(
            "producer_queue_limit_readings", "MAX_BUFFERED_READINGS: queue depth at which the ticker pauses."
        )
        self.devices = gauge("devices", "Devices in the last tick (readings it published).")
        self.max_temperature = gauge("max_temperature_celsius", "Highest temperature of the last tick, in °C.")
        self.source_errors = counter(
            "source_errors",
            "Readings that could not be taken (a GPU lost or failing, an exporter down or unreadable), by source"
            " and reason.",
            ("source", "reason"),
        )
        self.fleet_temperatures = FleetTemperatures(device_series_limit)
        registry.register(self.fleet_temperatures)
