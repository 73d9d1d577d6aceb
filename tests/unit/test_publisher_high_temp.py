"""HIGH TEMP lines: one per acknowledged hot reading at normal rates, capped with an exact summary at fleet scale."""

from __future__ import annotations

import logging

import pytest

from publisher.high_temp import HighTempLog, HotReading, plural


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "publisher.high_temp"]


def test_every_hot_reading_has_its_line_at_normal_rates(caplog: pytest.LogCaptureFixture) -> None:
    """Below the cap each acknowledged hot reading is logged in the original's words, two decimals."""
    caplog.set_level(logging.INFO)
    clock = FakeClock()
    log = HighTempLog(clock, limit=100)
    for tick in range(5):
        log.record([HotReading("gpu-0000", 85.5 + tick), HotReading("gpu-0002", 80.005)])
        clock.now += 1.0
    log.close()
    expected = []
    for tick in range(5):
        expected.append(f"Published HIGH TEMP: Device gpu-0000 - {85.5 + tick:.2f}°C")
        expected.append("Published HIGH TEMP: Device gpu-0002 - 80.00°C")
    assert lines(caplog) == expected


def test_lines_are_capped_per_window_and_the_rest_summed_up(caplog: pytest.LogCaptureFixture) -> None:
    """Past `limit` lines in a window the rest are counted and reported in one summary line when it closes."""
    caplog.set_level(logging.INFO)
    clock = FakeClock()
    log = HighTempLog(clock, limit=10, window=1.0)
    hot = [HotReading(f"gpu-{i:04d}", 90.0) for i in range(30)]
    log.record(hot)  # 10 shown, 20 held back
    clock.now = 0.5
    log.record(hot[:2], total=5)  # same window: 5 more held back, only 2 of them named
    clock.now = 1.2
    log.record(hot[:3])  # new window: summary, then 3 shown
    log.close()
    messages = lines(caplog)
    assert messages[:10] == [f"Published HIGH TEMP: Device gpu-{i:04d} - 90.00°C" for i in range(10)]
    assert messages[10] == (
        "Published HIGH TEMP: 25 more readings above the threshold not logged (at most 10 lines per 1s)"
    )
    assert messages[11:] == [f"Published HIGH TEMP: Device gpu-{i:04d} - 90.00°C" for i in range(3)]


def test_plural_never_says_one_of_many() -> None:
    """Counts in log lines agree with their noun."""
    assert [plural(n, "tick") for n in (0, 1, 2)] == ["0 ticks", "1 tick", "2 ticks"]
