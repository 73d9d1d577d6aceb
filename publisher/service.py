"""The ticker loop: read a tick from the source, hand it to the sink; pause when the buffer is full.

The loop gets everything from outside (source, sink, clocks, wait) so unit
tests drive it with a fake sink and a fake clock, and the entry point wires
in Kafka and real time. It never drops a reading: when the
cluster falls behind or goes away the buffer fills up to its bound and the
ticker pauses (backpressure) until the cluster catches up.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import numpy.typing as npt

from publisher.high_temp import LINES_PER_WINDOW, HighTempLog, HotReading, plural
from publisher.metrics import PublisherMetrics
from publisher.settings import HIGH_TEMPERATURE
from publisher.sources import ReadingSource
from publisher.ticker import next_tick
from shared.logs import Throttle

log = logging.getLogger(__name__)

BACKPRESSURE_POLL = 0.1  # seconds per wait for deliveries while paused
SERVE_SLICE = 0.05  # between ticks the producer is served in slices this long (callbacks, accurate counts)
RESUME_FRACTION = 0.5  # a pause ends once the buffer is down to this fraction of its bound
HOT_NAMED_PER_TICK = LINES_PER_WINDOW


class Sink(Protocol):
    """Where readings go (Kafka in production, a list in unit tests)."""

    def send(
        self,
        keys: Sequence[bytes],
        values: Sequence[bytes],
        give_up: Callable[[], bool],
        watched: npt.NDArray[np.intp] = ...,
        named: Sequence[HotReading] = (),
    ) -> int: ...
    def take_acknowledged(self) -> tuple[int, list[HotReading]]: ...
    def pending(self) -> int: ...
    def poll(self, timeout: float) -> None: ...
    def flush(self, timeout: float) -> int: ...
    def take_failures(self) -> dict[str, int]: ...
    def fatal_error(self) -> str | None: ...


@dataclass(frozen=True)
class Summary:
    ticks: int
    produced: int
    delivered: int
    failed: int  # reported failed by the producer
    unflushed: int  # still queued when the flush timed out
    elapsed: float  # seconds from the first tick to the end of the flush
    fatal: str | None = None
    cpu: float = 0.0  # CPU seconds of this process (all threads, librdkafka's too) over the same span

    @property
    def undelivered(self) -> int:
        return self.failed + self.unflushed

    @property
    def ok(self) -> bool:
        return self.undelivered == 0 and self.fatal is None

    @property
    def rate(self) -> float:
        return self.delivered / self.elapsed if self.elapsed > 0 else 0.0


@dataclass(frozen=True)
class Timing:
    interval: float  # seconds; 0 = as fast as possible
    max_ticks: int | None = None
    flush_timeout: float = 30.0


class PublisherService:
    def __init__(
        self,
        *,
        source: ReadingSource,
        sink: Sink,
        metrics: PublisherMetrics,
        stop: threading.Event,
        timing: Timing,
        max_buffered: int,
        monotonic: Callable[[], float] = time.monotonic,
        wait: Callable[[float], object] | None = None,
        cpu_clock: Callable[[], float] = time.process_time,
    ) -> None:
        self._source = source
        self._sink = sink
        self._metrics = metrics
        self._stop = stop
        self._timing = timing
        self._max_buffered = max_buffered
        self._monotonic = monotonic
        self._cpu_clock = cpu_clock
        self._wait = wait or self._serve_until_due
        self._high_temp = HighTempLog(monotonic)
        self._throttle = Throttle(10.0, monotonic)
        self._ticks = 0
        self._produced = 0
        self._failed = 0
        self._delivered = 0
        metrics.buffer_limit.set(max_buffered)

    def run(self) -> Summary:
        """Tick until stopped, MAX_TICKS or a fatal producer error; then flush within the timeout."""
        start = self._monotonic()
        self._cpu_start = self._cpu_clock()
        try:
            self._tick_until_stopped(start)
        finally:
            summary = self._finish(start)
        return summary

    def _tick_until_stopped(self, origin: float) -> None:
        interval, max_ticks = self._timing.interval, self._timing.max_ticks
        slot = 0
        while not self._stopping():
            if not self._has_room():
                self._pause_until_room()
                if interval > 0:  # the slots that passed while paused are gone, as after an overrun
                    following = next_tick(origin, interval, slot - 1, self._monotonic())
                    slot = following.slot
                    self._wait(following.delay)
                continue
            self._tick()
            if max_ticks is not None and self._ticks >= max_ticks:
                return
            following = next_tick(origin, interval, slot, self._monotonic())
            if following.skipped:
                self._report_overrun(slot, following.skipped)
            slot = following.slot
            if following.delay > 0:
                self._wait(following.delay)

    def _serve_until_due(self, delay: float) -> None:
        """Wait for the next slot while serving the producer, so reports and metrics stay current between ticks."""
        deadline = self._monotonic() + delay
        while not self._stopping():
            left = deadline - self._monotonic()
            if left <= 0.002:  # poll() counts whole milliseconds; sleep the rest precisely
                self._stop.wait(max(0.0, left))
                return
            self._sink.poll(min(left - 0.001, SERVE_SLICE))
            self._account()

    def _tick(self) -> None:
        tick = self._source.read()
        temperatures, devices = tick.temperatures, tick.device_ids
        hot = np.flatnonzero(temperatures > HIGH_TEMPERATURE)
        first = hot[:HOT_NAMED_PER_TICK]  # more than the log can show per second: the rest are counted, not named
        named = [HotReading(devices[i], t) for i, t in zip(first.tolist(), temperatures[first].tolist(), strict=True)]
        sent = self._sink.send(tick.keys, tick.values, self._stopping, hot, named)
        self._produced += sent
        self._metrics.produced.inc(sent)
        if sent == len(tick):
            self._ticks += 1
            self._metrics.ticks.inc()
            self._metrics.devices.set(len(tick))
            self._metrics.max_temperature.set(float(temperatures.max()) if len(tick) else float("nan"))
            self._metrics.fleet_temperatures.update(devices, tick.models, tick.hosts, temperatures)
        self._sink.poll(0)
        self._account()

    def _stopping(self) -> bool:
        return self._stop.is_set() or self._sink.fatal_error() is not None

    def _has_room(self) -> bool:
        return self._sink.pending() + self._source.devices <= self._max_buffered

    def _pause_until_room(self) -> None:
        """Backpressure: stop ticking until the cluster has taken half the buffer (or a stop request)."""
        started = self._monotonic()
        pending = self._sink.pending()
        log.warning(
            "backpressure: %s waiting for the cluster (MAX_BUFFERED_READINGS=%d); ticker paused until"
            " they are down to %d",
            plural(pending, "reading"), self._max_buffered, int(self._max_buffered * RESUME_FRACTION),
            extra={"pending": pending, "limit": self._max_buffered},
        )
        self._metrics.backpressure_pauses.inc()
        resume_at = self._max_buffered * RESUME_FRACTION
        while not self._stopping() and self._sink.pending() + self._source.devices > resume_at:
            self._sink.poll(BACKPRESSURE_POLL)
            self._account()
        paused = self._monotonic() - started
        self._metrics.backpressure_seconds.inc(paused)
        log.info(
            "backpressure over after %.1fs: %s waiting; ticker resumed",
            paused, plural(self._sink.pending(), "reading"),
            extra={"paused_s": round(paused, 3), "pending": self._sink.pending()},
        )

    def _report_overrun(self, slot: int, skipped: int) -> None:
        self._metrics.tick_overruns.inc()
        self._metrics.skipped_slots.inc(skipped)
        suppressed = self._throttle.allow("overrun")
        if suppressed is not None:
            more = f" ({plural(suppressed, 'more overrun')} not logged in the last 10s)" if suppressed else ""
            log.warning(
                "tick %d overran its %gms slot; skipped %s instead of catching up%s",
                slot, self._timing.interval * 1000, plural(skipped, "slot"), more,
                extra={"slot": slot, "skipped": skipped, "suppressed": suppressed},
            )

    def _account(self) -> None:
        """Fold failure reports, acknowledged hot readings and the queue depth into the counts, metrics and log."""
        count, named = self._sink.take_acknowledged()
        if count:
            self._metrics.high_temperature.inc(count)
            self._high_temp.record(named, count)
        for reason, count in self._sink.take_failures().items():
            self._failed += count
            self._metrics.delivery_errors.labels(reason).inc(count)
        pending = self._sink.pending()
        self._metrics.queue_depth.set(pending)
        # Neither pending nor failed means acknowledged (see kafka_sink); pending may briefly
        # count non-message events too, which only makes this an underestimate.
        delivered = self._produced - self._failed - pending
        if delivered > self._delivered:
            self._metrics.delivered.inc(delivered - self._delivered)
            self._delivered = delivered

    def _finish(self, start: float) -> Summary:
        pending = self._sink.pending()
        if pending:
            log.info(
                "flushing %s (up to %gs)", plural(pending, "reading"), self._timing.flush_timeout,
                extra={"pending": pending},
            )
        unflushed = self._sink.flush(self._timing.flush_timeout)
        self._account()
        self._high_temp.close()
        summary = Summary(
            ticks=self._ticks,
            produced=self._produced,
            delivered=self._delivered,
            failed=self._failed,
            unflushed=unflushed,
            elapsed=self._monotonic() - start,
            fatal=self._sink.fatal_error(),
            cpu=self._cpu_clock() - self._cpu_start,
        )
        log.log(
            logging.INFO if summary.ok else logging.ERROR,
            "stopped after %s: %s produced, %d delivered, %d not delivered"
            " (%d failed, %d still queued when the flush ended); %.0f readings/s",
            plural(summary.ticks, "tick"), plural(summary.produced, "reading"), summary.delivered,
            summary.undelivered, summary.failed, summary.unflushed, summary.rate,
            extra={
                "ticks": summary.ticks,
                "produced": summary.produced,
                "delivered": summary.delivered,
                "undelivered": summary.undelivered,
                "failed": summary.failed,
                "unflushed": summary.unflushed,
                "elapsed_s": round(summary.elapsed, 3),
                "readings_per_s": round(summary.rate, 1),
                "cpu_s": round(summary.cpu, 3),
            },
        )
        return summary
