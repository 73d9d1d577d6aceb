"""The message contract: field names as the Go original, and strict validation of what comes in."""

from __future__ import annotations

import contextlib
import json
import math
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.codec import MAX_RECORD_BYTES, DecodeError, decode_alert, decode_reading, encode
from shared.models import AlertEvent, TemperatureReading

GOOD = {
    "device_id": "gpu-0001",
    "temperature": 85.5,
    "timestamp": "2026-11-25T14:00:00.123456Z",
    "gpu_model": "NVIDIA H100 80GB HBM3",
    "host_name": "gpu-node-01",
    "power_consume": 321.0,
    "gpu_util": 87.5,
}

readings = st.builds(
    TemperatureReading,
    device_id=st.text(min_size=1, max_size=40),
    temperature=st.floats(-273.15, 10_000, allow_nan=False),
    timestamp=st.datetimes(
        min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
    ),
    gpu_model=st.text(max_size=40),
    host_name=st.text(max_size=40),
    power_consume=st.floats(0, 1_000_000, allow_nan=False),
    gpu_util=st.floats(0, 100, allow_nan=False),
)


@given(readings)
def test_reading_round_trip(reading: TemperatureReading) -> None:
    """Whatever the publisher encodes, the alerter decodes to the same reading."""
    assert decode_reading(encode(reading)) == reading


def test_field_names_are_the_originals() -> None:
    """The JSON keys are exactly the Go original's, and the timestamp is RFC 3339 UTC."""
    reading = decode_reading(json.dumps(GOOD).encode())
    doc = json.loads(encode(reading))
    assert list(doc) == list(GOOD)
    assert doc["timestamp"].endswith("Z")


def test_alert_event_carries_threshold() -> None:
    """An AlertEvent is the reading plus temperature_threshold, and converts back."""
    reading = decode_reading(json.dumps(GOOD).encode())
    event = AlertEvent.from_reading(reading, 80.0)
    doc = json.loads(encode(event))
    assert doc["temperature_threshold"] == 80.0
    assert decode_alert(encode(event)).reading() == reading


def test_other_offsets_are_normalised_to_aware_datetimes() -> None:
    """A timestamp with an offset is accepted and means the same instant."""
    doc = dict(GOOD, timestamp="2026-11-25T16:00:00+02:00")
    reading = decode_reading(json.dumps(doc).encode())
    assert reading.timestamp == datetime(2026, 11, 25, 14, tzinfo=UTC)
    assert reading.timestamp.utcoffset() == timedelta(hours=2)


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"not json", "malformed JSON"),
        (b"", "empty record"),
        (None, "empty record"),
        (b"[1,2,3]", "invalid field"),
        (json.dumps({k: v for k, v in GOOD.items() if k != "temperature"}).encode(), "temperature"),
        (json.dumps(dict(GOOD, temperature="hot")).encode(), "temperature"),
        (json.dumps(dict(GOOD, device_id="")).encode(), "device_id"),
        (json.dumps(dict(GOOD, device_id=7)).encode(), "device_id"),
        (json.dumps(dict(GOOD, timestamp="2026-11-25T14:00:00")).encode(), "timestamp"),
        (json.dumps(dict(GOOD, timestamp="yesterday")).encode(), "timestamp"),
        (json.dumps(dict(GOOD, gpu_util=101)).encode(), "gpu_util"),
        (json.dumps(dict(GOOD, host_name="h" * 300)).encode(), "host_name"),
        (json.dumps(GOOD).replace("85.5", "1e400").encode(), "temperature"),
        (json.dumps(GOOD).replace("85.5", "NaN").encode(), "malformed JSON"),
        (json.dumps(GOOD).replace("85.5", "Infinity").encode(), "malformed JSON"),
        (b'{"device_id": "x", "pad": "' + b"a" * MAX_RECORD_BYTES + b'"}', "too large"),
    ],
)
def test_bad_records_raise_one_error_type(raw: bytes | None, reason: str) -> None:
    """Every kind of bad record raises DecodeError with a reason that says what was wrong."""
    with pytest.raises(DecodeError) as info:
        decode_reading(raw)
    assert reason in info.value.reason


@given(st.binary(max_size=300))
def test_arbitrary_bytes_never_escape_as_other_errors(raw: bytes) -> None:
    """Random bytes either decode to a valid reading or raise DecodeError, nothing else."""
    try:
        reading = decode_reading(raw)
    except DecodeError:
        return
    assert math.isfinite(reading.temperature)


# -- hostile bytes: a record either decodes or raises the one DecodeError, never anything else ----------------------

HOSTILE = [
    b'{"device_id":"\xff\xfe","temperature":171.0,"timestamp":"2026-11-25T14:00:00Z"}',  # invalid UTF-8 in a string
    b'{"device_id":"gpu-1","temperature":171.0,"timestamp":"2026-11-25T14:00:00Z","x":'
    + b"[" * 1000
    + b"]" * 1000
    + b"}",  # nested deeper than the decoder recurses
    b'{"device_id":"gpu-1","temperature":' + b"9" * 5000 + b',"timestamp":"2026-11-25T14:00:00Z"}',
    b"\xef\xbb\xbf" + json.dumps(GOOD).encode(),  # a byte-order mark
    b'{"device_id":"\\ud800","temperature":1,"timestamp":"2026-11-25T14:00:00Z"}',  # a lone surrogate
    b"",
    b"null",
    b"[]",
    b'"\xff"',
]


@pytest.mark.parametrize("value", HOSTILE, ids=range(len(HOSTILE)))
def test_hostile_records_raise_decode_error(value: bytes) -> None:
    """Each record of the hostile corpus is a DecodeError with a printable reason, not an escaping exception."""
    with pytest.raises(DecodeError) as raised:
        decode_reading(value)
    assert raised.value.reason.isprintable()
    with pytest.raises(DecodeError):
        decode_alert(value)


def _decodes_or_decode_error(value: bytes) -> None:
    for decode in (decode_reading, decode_alert):
        with contextlib.suppress(DecodeError):
            decode(value)


@given(st.binary(max_size=400))
def test_fuzz_raw_bytes(value: bytes) -> None:
    """Arbitrary bytes decode or raise DecodeError."""
    _decodes_or_decode_error(value)


_json_values = st.recursive(
    st.none() | st.booleans() | st.floats() | st.integers() | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)


@given(
    st.dictionaries(st.sampled_from([*GOOD, "x", "Temperature"]), _json_values, max_size=9),
    st.integers(0, 300),
    st.binary(min_size=1, max_size=3),
)
def test_fuzz_mutated_readings(fields: dict[str, object], position: int, splice: bytes) -> None:
    """Near-valid readings, with arbitrary values and bytes spliced in anywhere, decode or raise DecodeError."""
    document = json.dumps({**GOOD, **fields}, allow_nan=True).encode()
    _decodes_or_decode_error(document)
    _decodes_or_decode_error(document[:position] + splice + document[position:])
