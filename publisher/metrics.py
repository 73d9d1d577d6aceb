"""The publisher's Prometheus metrics, updated once per tick rather than once per reading.

Counters move by a tick's worth at a time and the per-device temperature
gauge is read from the last tick's array when Prometheus scrapes, so
observability costs nothing per reading on the hot path.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from publisher.simulator import Fleet, Floats


class FleetTemperatures(Collector):
    """`gpu_temperature_celsius{device, model, host}`: each device's latest published temperature.

    One series per device is bounded by the fleet (NUM_DEVICES), the one label
    set the conventions allow to grow with the installation, as dcgm-exporter's.
    """

    def __init__(self, fleet: Fleet) -> None:
        self._fleet = fleet
        self._latest: Floats | None = None

    def update(self, temperatures: Floats) -> None:
        """Keep a reference to this tick's array (never modified afterwards, so scrapes see one tick)."""
        self._latest = temperatures

    def collect(self) -> Iterator[Metric]:
        family = GaugeMetricFamily(
            "gpu_temperature_celsius",
            "Latest published temperature of each simulated GPU, in degrees Celsius.",
            labels=["device", "model", "host"],
        )
        latest = self._latest
        if latest is not None:
            fleet = self._fleet
            for device, model, host, value in zip(
                fleet.device_ids, fleet.models, fleet.hosts, latest.tolist(), strict=True
            ):
                family.add_metric([device, model, host], value)
        yield family


class PublisherMetrics:
    def __init__(self, registry: CollectorRegistry, fleet: Fleet) -> None:
        def counter(name: str, doc: str, labels: tuple[str, ...] = ()) -> Counter:
            return Counter(f"gpu_publisher_{name}", doc, labels, registry=registry)

        self.ticks = counter("ticks", "Ticks completed (one reading per device each).")
        self.produced = counter("readings_produced", "Readings handed to the Kafka producer.")
        self.delivered = counter("readings_delivered", "Readings acknowledged by all in-sync replicas.")
        self.delivery_errors = counter(
            "delivery_errors", "Readings whose delivery failed, by librdkafka error name.", ("reason",)
        )
        self.high_temperature = counter(
            "high_temperature_readings", "Published readings above the HIGH TEMP log threshold (80 °C)."
        )
        self.tick_overruns = counter(
            "tick_overruns", "Ticks that ran past the next slot; the missed slots were skipped."
        )
        self.skipped_slots = counter("skipped_slots", "Tick slots skipped because a tick overran.")
        self.backpressure_pauses = counter(
            "backpressure_pauses", "Times the ticker paused because MAX_BUFFERED_READINGS were waiting."
        )
        self.backpressure_seconds = counter("backpressure_seconds", "Time the ticker spent paused by backpressure.")
        self.queue_depth = Gauge(
            "gpu_publisher_producer_queue_readings",
            "Readings produced but not yet acknowledged or failed.",
            registry=registry,
        )
        self.buffer_limit = Gauge(
            "gpu_publisher_producer_queue_limit_readings",
            "MAX_BUFFERED_READINGS: queue depth at which the ticker pauses.",
            registry=registry,
        )
        self.fleet_temperatures = FleetTemperatures(fleet)
        registry.register(self.fleet_temperatures)
