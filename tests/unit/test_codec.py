"""The message contract: field names as the Go original, and strict validation of what comes in."""

from __future__ import annotations

import contextlib
import json
import math
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.codec import MAX_RECORD_BYTES, DecodeError, decode_alert, decode_lenient, decode_reading, encode
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


# -- read what Go's encoding/json read: keys in any case, missing fields at zero values -----------------------------

RECORD_TIME = datetime(2026, 11, 25, 15, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        ({"Device_ID": "gpu-1", "TEMPERATURE": 201.5, "Timestamp": GOOD["timestamp"]}, ("gpu-1", 201.5)),
        ({"DEVICE_ID": "gpu-1", "temperature": 201.5}, ("gpu-1", 201.5)),
        ({"device_id": "gpu-1", "Temperature": 20.0, "temperature": 201.5}, ("gpu-1", 201.5)),  # the last one wins
        ({"device_id": "gpu-1", "temperature": 201.5, "Temperature": None}, ("gpu-1", 201.5)),  # null: no effect
        ({"device_id": "gpu-1", "temperature": 201.5, "ho\u017ft_name": "h"}, ("gpu-1", 201.5)),  # ſ folds to s
    ],
)
def test_keys_in_another_case_are_read_as_go_reads_them(
    document: dict[str, object], expected: tuple[str, float]
) -> None:
    """Keys match whatever their case (with Go's folding), the last spelling winning and null changing nothing."""
    reading = decode_reading(json.dumps(document).encode(), RECORD_TIME)
    assert (reading.device_id, reading.temperature) == expected


def test_a_missing_timestamp_is_the_records() -> None:
    """A reading without a timestamp is judged at the time the caller gives (the record's timestamp)."""
    doc = {k: v for k, v in GOOD.items() if k != "timestamp"}
    assert decode_reading(json.dumps(doc).encode(), RECORD_TIME).timestamp == RECORD_TIME
    with pytest.raises(DecodeError, match="timestamp"):
        decode_reading(json.dumps(doc).encode())


def test_missing_or_null_details_are_zero_values() -> None:
    """Without (or with null) model, host, power and utilisation a reading still decodes, with Go's zero values."""
    reading = decode_reading(
        b'{"device_id":"gpu-1","temperature":201.0,"gpu_model":null,"host_name":null,"power_consume":null}',
        RECORD_TIME,
    )
    assert (reading.gpu_model, reading.host_name, reading.power_consume, reading.gpu_util) == ("", "", 0.0, 0.0)


def test_a_reading_with_the_nvml_publishers_extra_fields_decodes() -> None:
    """Extra fields (gpu_uuid, gpu_index, slowdown/shutdown temperatures, clock event reasons) and an omitted power
    reading, as the NVML publisher writes them, decode on the strict path."""
    doc = {k: v for k, v in GOOD.items() if k != "power_consume"}
    doc |= {
        "gpu_uuid": "GPU-a0000000-0000",
        "gpu_index": 0,
        "slowdown_temperature": 87,
        "shutdown_temperature": 92,
        "clock_event_reasons": ["sw_power_cap", "sw_thermal_slowdown"],
        "memory_temperature": None,
    }
    reading = decode_reading(json.dumps(doc).encode())
    assert (reading.device_id, reading.temperature, reading.power_consume) == ("gpu-0001", 85.5, 0.0)


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b'{"temperature":201.0}', "device_id"),
        (b'{"Device_Id":"gpu-1","TEMP":201.0}', "temperature"),
        (b'{"device_id":"gpu-1","temperature":null}', "temperature"),
        (b'{"DEVICE_ID":7,"temperature":201.0}', "device_id"),
        (b'{"device_id":"gpu-1","Temperature":"201"}', "temperature"),
        (b'{"device_id":"gpu-1","temperature":201.0,"TIMESTAMP":"yesterday"}', "timestamp"),
        (b'{"device_\xc4\xb0d":"gpu-1","temperature":201.0}', "device_id"),  # İ does not fold to i in Go either
    ],
)
def test_what_cannot_be_judged_is_still_refused(raw: bytes, reason: str) -> None:
    """No device, no temperature, or a value of the wrong type (in any key case) is a DecodeError naming the field."""
    with pytest.raises(DecodeError, match="invalid field") as info:
        decode_reading(raw, RECORD_TIME)
    assert reason in info.value.reason


_key_cases = st.sampled_from([str.lower, str.upper, str.title, lambda k: k.replace("s", "\u017f")])


@given(
    st.dictionaries(st.sampled_from([*GOOD, "x", "Temperature", "DEVICE_ID"]), _json_values, max_size=9),
    st.lists(_key_cases, min_size=7, max_size=7),
    st.booleans(),
)
def test_fuzz_the_lenient_path(fields: dict[str, object], cases: list[Callable[[str], str]], with_time: bool) -> None:
    """Readings with keys in any case and arbitrary values decode or raise DecodeError; one that decodes, each
    field spelt once, carries the values of those keys."""
    document = {case(key): value for case, (key, value) in zip(cases, {**GOOD, **fields}.items(), strict=False)}
    raw = json.dumps(document, allow_nan=True).encode()
    try:
        reading = decode_reading(raw, RECORD_TIME if with_time else None)
    except DecodeError:
        return
    assert math.isfinite(reading.temperature)
    folded = [key.lower().replace("\u017f", "s") for key in document]
    if len(set(folded)) == len(folded):
        values = dict(zip(folded, document.values(), strict=True))
        assert reading.device_id == values["device_id"]
        assert reading.temperature == values["temperature"]


@given(st.binary(max_size=400))
def test_fuzz_the_lenient_path_with_raw_bytes(value: bytes) -> None:
    """Arbitrary bytes handed straight to the lenient decoder decode or raise DecodeError."""
    with contextlib.suppress(DecodeError):
        decode_lenient(value, RECORD_TIME)
