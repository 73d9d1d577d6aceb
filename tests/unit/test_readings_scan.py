"""The per-record decode of the readings consumer (alerter.adapters.readings.scan): the strict fast path, the
lenient fallback as Go reads readings, and what is left for the dead-letter topic."""

from __future__ import annotations

from datetime import UTC, datetime

from confluent_kafka import Message

from alerter.adapters.readings import scan
from alerter.domain.timestamps import FUTURE_TOLERANCE, PAST_LIMIT, record_time

ARRIVAL = 1_800_000_000.0
STAMP = b'"2027-01-15T08:00:00Z"'


def message(value: bytes | None, millis: int = round(ARRIVAL * 1000) - 5000, kind: int = 1, offset: int = 0) -> Message:
    return Message(topic="readings", partition=0, offset=offset, key=b"gpu-1", value=value, timestamp=(kind, millis))


def test_readings_go_would_read_are_judged() -> None:
    """Keys in another case and a missing timestamp are read leniently: hot ones are judged, with the record's
    timestamp standing in for the missing one; cool ones only move the offset."""
    batch = scan(
        [
            message(b'{"DEVICE_ID":"gpu-1","Temperature":201.5}', offset=0),
            message(b'{"device_id":"gpu-2","temperature":20.0}', offset=1),
            message(b'{"Device_Id":"gpu-3","TEMPERATURE":199.0,"TimeStamp":' + STAMP + b"}", offset=2),
        ],
        150.0,
        clock=lambda: ARRIVAL,
    )
    assert [(r.device_id, r.temperature) for _, r in batch.hot] == [("gpu-1", 201.5), ("gpu-3", 199.0)]
    assert batch.hot[0][1].timestamp == datetime.fromtimestamp(ARRIVAL - 5, UTC)
    assert batch.hot[1][1].timestamp == datetime(2027, 1, 15, 8, tzinfo=UTC)
    assert (batch.bad, batch.ends, batch.records) == ([], {0: 3}, 3)


def test_a_missing_timestamp_with_an_unusable_record_time_is_the_arrival() -> None:
    """Without its own timestamp and with a record timestamp of -1, a reading is stamped with its arrival."""
    batch = scan([message(b'{"device_id":"gpu-1","temperature":201.5}', millis=-1)], 150.0, clock=lambda: ARRIVAL)
    assert batch.hot[0][1].timestamp == datetime.fromtimestamp(ARRIVAL, UTC)


def test_what_cannot_be_judged_is_left_for_the_dead_letter_topic() -> None:
    """No temperature, no device, not JSON, empty: each is a bad record, not a reading."""
    values = [b'{"device_id":"gpu-1"}', b'{"Temperature":201.0}', b"{not json", None]
    batch = scan([message(v, offset=i) for i, v in enumerate(values)], 150.0, clock=lambda: ARRIVAL)
    assert (batch.hot, len(batch.bad), batch.ends) == ([], 4, {})


def test_record_times_that_cannot_be_trusted_are_the_arrival() -> None:
    """Missing, -1, zero, far-future and far-past record timestamps are replaced by the arrival time; plausible
    ones, a backlog's included, are kept."""
    day = 24 * 3600
    assert record_time(0, 123, ARRIVAL) == ARRIVAL  # TIMESTAMP_NOT_AVAILABLE
    assert record_time(1, -1, ARRIVAL) == ARRIVAL
    assert record_time(1, 0, ARRIVAL) == ARRIVAL
    assert record_time(1, round((ARRIVAL + FUTURE_TOLERANCE + 1) * 1000), ARRIVAL) == ARRIVAL
    assert record_time(1, round((ARRIVAL - PAST_LIMIT - 1) * 1000), ARRIVAL) == ARRIVAL
    assert record_time(1, round((ARRIVAL - 3 * day) * 1000), ARRIVAL) == ARRIVAL - 3 * day
    assert record_time(2, round((ARRIVAL + 60) * 1000), ARRIVAL) == ARRIVAL + 60
