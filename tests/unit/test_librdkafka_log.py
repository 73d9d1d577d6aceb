"""librdkafka's lines in our logs: a starting cluster's transient states once at INFO, repeats throttled."""

from __future__ import annotations

import logging

import pytest

from shared.librdkafka_log import LibrdkafkaLines

GETPID = (
    "GETPID [gpu-temp-publisher#producer-2] [thrd:main]: Failed to acquire idempotence PID from broker "
    "127.0.0.1:9092/1: Broker: Coordinator load in progress: retrying"
)


def _record(message: str, level: int = logging.WARNING) -> logging.LogRecord:
    return logging.LogRecord("publisher.librdkafka", level, __file__, 1, message, None, None)


def test_coordinator_load_in_progress_is_one_info_line() -> None:
    """The idempotence-PID retry of a starting cluster is INFO, said once, however often librdkafka repeats it."""
    lines = LibrdkafkaLines()
    first = _record(GETPID)
    assert lines.filter(first)
    assert first.levelno == logging.INFO
    assert first.levelname == "INFO"
    assert "expected while the cluster starts" in first.getMessage()
    assert not lines.filter(_record(GETPID.replace("9092/1", "9093/2")))


@pytest.mark.parametrize("kind", ["Coordinator not available", "Leader not available", "Not coordinator"])
def test_other_transient_states_are_info_once(kind: str) -> None:
    """Each transient state of an electing cluster is its own INFO line, once."""
    lines = LibrdkafkaLines()
    record = _record(f"FETCH [c#consumer-1] [thrd:main]: Broker: {kind}")
    assert lines.filter(record)
    assert record.levelno == logging.INFO
    assert not lines.filter(_record(f"FETCH [c#consumer-1] [thrd:main]: Broker: {kind}"))


def test_a_repeated_complaint_passes_once_per_interval_with_a_count() -> None:
    """A line repeated on every reconnect (numbers aside) keeps its level and passes once per interval, the next
    time with how many were left out."""
    now = [0.0]
    lines = LibrdkafkaLines(every=10.0, clock=lambda: now[0])
    connect = "FAIL [p#producer-1] [thrd:127.0.0.1:9092/1]: 127.0.0.1:9092/1: Connect to ipv4#127.0.0.1:9092 failed"
    assert lines.filter(_record(connect))
    assert not lines.filter(_record(connect.replace("9092", "9093")))
    assert not lines.filter(_record(connect))
    now[0] = 10.0
    record = _record(connect)
    assert lines.filter(record)
    assert record.levelno == logging.WARNING
    assert record.getMessage().endswith("(2 more like it not logged in the last 10s)")
