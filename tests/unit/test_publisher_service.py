"""The ticker loop, driven by a fake clock and a sink that keeps records in a list (no Kafka, no sleeps)."""

from __future__ import annotations

import itertools
import json
import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
import numpy.typing as npt
import pytest
from prometheus_client import CollectorRegistry

from publisher.encoding import ReadingEncoder
from publisher.high_temp import HotReading
from publisher.metrics import PublisherMetrics
from publisher.service import PublisherService, Summary, Timing
from publisher.simulator import build_fleet, initial_state
from publisher.sources import SimulatorSource
from shared.codec import decode_reading

EPOCH_NS = 1_714_564_800_000_000_000


class FakeClock:
    def __init__(self, start: float = 500.0) -> None:
        self.now = start

    def monotonic(self) -> float:
        return self.now

    def wait(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class FakeSink:
    """Accepts every record at once; tests script queue depth, failures and stops through `on_send`.

    Watched (hot) readings count as acknowledged at the next poll unless `holding` keeps them back.
    """

    clock: FakeClock
    work: float = 0.0  # seconds each send takes on the fake clock
    records: list[tuple[bytes, bytes]] = field(default_factory=list)
    send_times: list[float] = field(default_factory=list)
    queued: int = 0
    failures: dict[str, int] = field(default_factory=dict)
    fatal: str | None = None
    unflushed: int = 0
    flush_timeouts: list[float] = field(default_factory=list)
    on_send: Callable[[FakeSink], None] | None = None
    on_poll: Callable[[FakeSink], None] | None = None
    watched: int = 0
    named: list[HotReading] = field(default_factory=list)
    holding: bool = False

    def send(
        self,
        keys: Sequence[bytes],
        values: Sequence[bytes],
        give_up: Callable[[], bool],
        watched: npt.NDArray[np.intp] = np.zeros(0, dtype=np.intp),  # noqa: B008 - never modified
        named: Sequence[HotReading] = (),
    ) -> int:
        self.send_times.append(self.clock.now)
        if self.on_send:
            self.on_send(self)
        sent = 0
        for key, value in zip(keys, values, strict=True):
            if give_up() and sent == len(keys) // 2:
                break
            self.records.append((key, value))
            sent += 1
        self.watched += int(np.count_nonzero(watched < sent))
        self.named.extend(named[: int(np.count_nonzero(watched[: len(named)] < sent))])
        self.clock.now += self.work
        return sent

    def take_acknowledged(self) -> tuple[int, list[HotReading]]:
        if self.holding:
            return 0, []
        acknowledged = (self.watched, self.named)
        self.watched, self.named = 0, []
        return acknowledged

    def pending(self) -> int:
        return self.queued

    def poll(self, timeout: float) -> None:
        self.clock.now += timeout
        if self.on_poll:
            self.on_poll(self)

    def flush(self, timeout: float) -> int:
        self.flush_timeouts.append(timeout)
        self.queued = self.unflushed
        return self.unflushed

    def take_failures(self) -> dict[str, int]:
        failures, self.failures = self.failures, {}
        return failures

    def fatal_error(self) -> str | None:
        return self.fatal


@dataclass
class Harness:
    devices: int = 4
    interval: float = 1.0
    max_ticks: int | None = 5
    max_buffered: int = 1000
    work: float = 0.0
    probability: float = 0.05
    frozen_wall_clock: bool = False
    serve_while_waiting: bool = False  # the service's own wait (polls the sink) instead of the fake clock's
    clock: FakeClock = field(default_factory=FakeClock)
    stop: threading.Event = field(default_factory=threading.Event)
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        self.sink = FakeSink(self.clock, self.work)

    def run(self) -> Summary:
        rng = np.random.default_rng(99)
        fleet = build_fleet(self.devices, rng)
        self.fleet = fleet
        wall = (lambda: EPOCH_NS) if self.frozen_wall_clock else (lambda: EPOCH_NS + int(self.clock.now * 1e9))
        source = SimulatorSource(fleet, initial_state(fleet, rng), self.probability, rng, ReadingEncoder(fleet, wall))
        service = PublisherService(
            source=source,
            sink=self.sink,
            metrics=PublisherMetrics(self.registry, 10_000, ("MSG_SIZE_TOO_LARGE", "_MSG_TIMED_OUT")),
            stop=self.stop,
            timing=Timing(self.interval, self.max_ticks, flush_timeout=12.0),
            max_buffered=self.max_buffered,
            monotonic=self.clock.monotonic,
            wait=None if self.serve_while_waiting else self.clock.wait,
        )
        return service.run()

    def metric(self, name: str, labels: dict[str, str] | None = None) -> float:
        value = self.registry.get_sample_value(name, labels or {})
        assert value is not None, name
        return value


def test_n_ticks_of_m_devices_give_n_times_m_readings_in_device_order() -> None:
    """Each tick hands the sink one valid reading per device, keyed by device, in device order."""
    harness = Harness(devices=6, max_ticks=4)
    summary = harness.run()
    assert summary == Summary(
        ticks=4, produced=24, delivered=24, failed=0, unflushed=0, elapsed=summary.elapsed, cpu=summary.cpu
    )
    assert summary.ok
    ids = [d.encode() for d in harness.fleet.device_ids]
    assert [key for key, _ in harness.sink.records] == ids * 4
    for key, value in harness.sink.records:
        assert decode_reading(value).device_id == key.decode()
    assert harness.sink.flush_timeouts == [12.0]


def test_timestamps_strictly_increase_per_device_even_if_the_wall_clock_stands_still() -> None:
    """Each device's readings carry strictly increasing timestamps, also when the wall clock stands still."""
    harness = Harness(devices=3, max_ticks=6, interval=0.0, frozen_wall_clock=True)
    harness.run()
    by_device: dict[bytes, list[tuple[datetime, int]]] = {}
    for key, value in harness.sink.records:
        stamp = json.loads(value)["timestamp"]
        nanos = int(stamp[20:-1].ljust(9, "0")) if "." in stamp else 0
        by_device.setdefault(key, []).append((decode_reading(value).timestamp.replace(microsecond=0), nanos))
    for stamps in by_device.values():
        assert len(stamps) == 6
        assert all(a < b for a, b in itertools.pairwise(stamps))


def test_ticks_start_on_their_slots_without_drift() -> None:
    """Ticks that take 30 % of the interval still start exactly one interval apart, from the first one."""
    harness = Harness(interval=0.5, max_ticks=50, work=0.15)
    harness.run()
    start = harness.sink.send_times[0]
    assert harness.sink.send_times == pytest.approx([start + k * 0.5 for k in range(50)], abs=1e-9)
    assert harness.metric("gpu_publisher_tick_overruns_total") == 0


def test_waiting_between_ticks_serves_the_producer_in_short_slices() -> None:
    """Between ticks the producer is polled in slices of at most 50 ms, and ticks still start on their slots."""
    harness = Harness(interval=1.0, max_ticks=3, work=0.2, serve_while_waiting=True)
    polls: list[float] = []
    harness.sink.on_poll = lambda sink: polls.append(harness.clock.now)
    harness.run()
    start = harness.sink.send_times[0]
    assert harness.sink.send_times == pytest.approx([start, start + 1.0, start + 2.0], abs=0.003)
    gaps = [b - a for a, b in itertools.pairwise(polls)]
    assert len(polls) > 30
    assert max(gaps) <= 0.2 + 0.05 + 1e-9, "never more than one slice (or one tick's work) between polls"


def test_overrun_skips_slots_and_is_logged_and_counted(caplog: pytest.LogCaptureFixture) -> None:
    """A tick that takes 2.5 intervals is followed by the next future slot, not by a burst of missed ticks."""
    caplog.set_level(logging.WARNING)
    harness = Harness(interval=1.0, max_ticks=4)

    def slow_second_tick(sink: FakeSink) -> None:
        sink.work = 2.5 if len(sink.send_times) == 2 else 0.1

    harness.sink.on_send = slow_second_tick
    harness.run()
    start = harness.sink.send_times[0]
    assert [t - start for t in harness.sink.send_times] == pytest.approx([0.0, 1.0, 4.0, 5.0])
    assert harness.metric("gpu_publisher_tick_overruns_total") == 1
    assert harness.metric("gpu_publisher_skipped_slots_total") == 2
    assert any("overran" in r.getMessage() for r in caplog.records)


def test_full_buffer_pauses_the_ticker_then_everything_is_sent(caplog: pytest.LogCaptureFixture) -> None:
    """At MAX_BUFFERED_READINGS the ticker pauses (logged once) until the buffer drains; no reading is skipped."""
    caplog.set_level(logging.INFO)
    harness = Harness(devices=10, interval=0.0, max_ticks=8, max_buffered=50)

    def cluster_away_then_back(sink: FakeSink) -> None:
        sink.queued += 10  # nothing is acknowledged while the cluster is away

    def drains_after_two_seconds(sink: FakeSink) -> None:
        if pause_start[0] and harness.clock.now - pause_start[0] >= 2.0:
            sink.queued = 0

    pause_start = [0.0]
    harness.sink.on_send = cluster_away_then_back
    harness.sink.on_poll = drains_after_two_seconds
    original_poll = harness.sink.poll

    def poll(timeout: float) -> None:
        if timeout and not pause_start[0]:
            pause_start[0] = harness.clock.now
        original_poll(timeout)

    harness.sink.poll = poll  # type: ignore[method-assign]
    summary = harness.run()
    assert summary.produced == 80
    assert len(harness.sink.records) == 80
    assert summary.delivered == 80
    pauses = [r for r in caplog.records if r.getMessage().startswith("backpressure:")]
    assert len(pauses) == 1
    assert harness.metric("gpu_publisher_backpressure_pauses_total") == 1
    assert harness.metric("gpu_publisher_backpressure_seconds_total") == pytest.approx(2.0, abs=0.11)
    # the pause began when a sixth tick would have overfilled the buffer
    assert harness.sink.send_times[5] - harness.sink.send_times[4] >= 2.0


def test_stop_request_ends_after_the_current_tick_and_flushes() -> None:
    """A stop during tick 3 lets that tick finish, produces no further tick, and still flushes."""
    harness = Harness(devices=5, max_ticks=None, interval=1.0)

    def stop_on_third(sink: FakeSink) -> None:
        if len(sink.send_times) == 3:
            harness.stop.set()

    harness.sink.on_send = stop_on_third
    summary = harness.run()
    assert summary.ticks == 2
    assert summary.produced == 2 * 5 + 2  # the fake gives up halfway through the stopped tick
    assert len(harness.sink.records) == summary.produced
    assert harness.sink.flush_timeouts == [12.0]


def test_failures_and_unflushed_readings_make_the_run_unsuccessful() -> None:
    """Failed deliveries are counted by reason, never counted as delivered, and fail the run."""
    harness = Harness(devices=4, max_ticks=3)

    def fail_two(sink: FakeSink) -> None:
        sink.queued = 1  # the reading the flush will not manage to deliver
        if len(sink.send_times) == 2:
            sink.failures = {"MSG_SIZE_TOO_LARGE": 2}

    harness.sink.on_send = fail_two
    harness.sink.unflushed = 1
    summary = harness.run()
    assert (summary.produced, summary.failed, summary.unflushed, summary.delivered) == (12, 2, 1, 9)
    assert summary.undelivered == 3
    assert not summary.ok
    assert harness.metric("gpu_publisher_delivery_errors_total", {"reason": "MSG_SIZE_TOO_LARGE"}) == 2
    assert harness.metric("gpu_publisher_readings_delivered_total") == 9


def test_fatal_producer_error_stops_the_loop() -> None:
    """A fatal producer error stops ticking and marks the run failed."""
    harness = Harness(max_ticks=None)

    def fatal_on_second(sink: FakeSink) -> None:
        if len(sink.send_times) == 2:
            sink.fatal = "fenced"

    harness.sink.on_send = fatal_on_second
    summary = harness.run()
    assert summary.fatal == "fenced"
    assert not summary.ok
    assert len(harness.sink.send_times) == 2


def test_metrics_match_what_was_published() -> None:
    """Counters, the hot-reading count and the per-device gauge agree with the records the sink received."""
    harness = Harness(devices=20, max_ticks=30, probability=0.3)
    harness.sink.on_send = lambda sink: setattr(sink, "queued", 7)
    harness.run()
    readings = [decode_reading(value) for _, value in harness.sink.records]
    assert harness.metric("gpu_publisher_ticks_total") == 30
    assert harness.metric("gpu_publisher_readings_produced_total") == 600
    assert harness.metric("gpu_publisher_readings_delivered_total") == 600
    hot = sum(r.temperature > 80 for r in readings)
    assert hot > 0
    assert harness.metric("gpu_publisher_high_temperature_readings_total") == hot
    assert harness.metric("gpu_publisher_producer_queue_limit_readings") == 1000
    last = {r.device_id: r for r in readings}
    for i, device in enumerate(harness.fleet.device_ids):
        labels = {"device": device, "model": harness.fleet.models[i], "host": harness.fleet.hosts[i]}
        assert harness.metric("gpu_temperature_celsius", labels) == last[device].temperature


def test_hot_readings_are_logged_and_counted_only_once_acknowledged(caplog: pytest.LogCaptureFixture) -> None:
    """A queued hot reading is neither logged nor counted until the sink reports it acknowledged."""
    caplog.set_level(logging.INFO)
    harness = Harness(devices=20, max_ticks=5, probability=0.5)
    harness.sink.holding = True
    harness.sink.unflushed = 0

    def release_at_flush(timeout: float) -> int:
        harness.sink.flush_timeouts.append(timeout)
        assert not [r for r in caplog.records if r.getMessage().startswith("Published HIGH TEMP")]
        assert harness.metric("gpu_publisher_high_temperature_readings_total") == 0
        harness.sink.holding = False
        return 0

    harness.sink.flush = release_at_flush  # type: ignore[method-assign]
    harness.run()
    readings = [decode_reading(value) for _, value in harness.sink.records]
    hot = [r for r in readings if r.temperature > 80]
    assert hot
    assert harness.metric("gpu_publisher_high_temperature_readings_total") == len(hot)
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("Published HIGH TEMP: Device")]
    assert lines == [f"Published HIGH TEMP: Device {r.device_id} - {r.temperature:.2f}°C" for r in hot][:20]


def test_usual_delivery_failure_reasons_start_at_zero() -> None:
    """delivery_errors_total has its usual reasons at 0 before any failure, so rates and alerts see them."""
    harness = Harness(max_ticks=1)
    harness.run()
    assert harness.metric("gpu_publisher_delivery_errors_total", {"reason": "MSG_SIZE_TOO_LARGE"}) == 0
    assert harness.metric("gpu_publisher_delivery_errors_total", {"reason": "_MSG_TIMED_OUT"}) == 0


def test_log_lines_never_say_one_plural(caplog: pytest.LogCaptureFixture) -> None:
    """One tick of one device is reported as `1 tick: 1 reading`, not `1 ticks`, `1 readings`."""
    caplog.set_level(logging.INFO)
    Harness(devices=1, max_ticks=1).run()
    summary = [r.getMessage() for r in caplog.records if r.getMessage().startswith("stopped after")]
    assert summary[0].startswith("stopped after 1 tick: 1 reading produced, 1 delivered")


def test_per_device_series_stop_beyond_the_limit() -> None:
    """gpu_temperature_celsius has one series per device up to METRICS_DEVICE_SERIES_LIMIT, none beyond; the
    fleet gauges stay."""
    from publisher.metrics import FleetTemperatures  # noqa: PLC0415

    def series(limit: int, devices: int) -> int:
        collector = FleetTemperatures(limit)
        names = [f"gpu-{i}" for i in range(devices)]
        collector.update(names, ["m"] * devices, ["h"] * devices, np.arange(devices, dtype=np.float64))
        return sum(len(family.samples) for family in collector.collect())

    assert series(limit=10, devices=10) == 10
    assert series(limit=10, devices=11) == 0
    assert series(limit=0, devices=1) == 0
    harness = Harness(devices=6, max_ticks=2)
    harness.run()
    assert harness.metric("gpu_publisher_devices") == 6
    assert harness.metric("gpu_publisher_max_temperature_celsius") > 0
