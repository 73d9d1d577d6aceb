"""Encoded readings are valid contract JSON that decodes to the simulated values, rounded to 0.01."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from publisher.encoding import ReadingEncoder, published, rfc3339
from publisher.simulator import Fleet, Readings, advance, build_fleet, initial_state
from shared.codec import decode_reading

FIELDS = {"device_id", "temperature", "timestamp", "gpu_model", "host_name", "power_consume", "gpu_util"}
STAMP = rfc3339(1_714_564_800_123_456)


def readings_of(temperature: list[float], power: list[float], util: list[float]) -> Readings:
    return Readings(
        temperature=np.array(temperature),
        power=np.array(power),
        util=np.array(util),
        abnormal=np.zeros(len(temperature), dtype=bool),
    )


def test_rfc3339_is_utc_with_microseconds() -> None:
    """Timestamps are RFC 3339 in UTC with microseconds, as Go marshals time.Time."""
    assert STAMP == b"2024-05-01T12:00:00.123456Z"
    assert rfc3339(0) == b"1970-01-01T00:00:00.000000Z"


def test_simulated_tick_decodes_with_the_contract_decoder() -> None:
    """A whole simulated tick decodes with shared.codec, every field present, numbers within 0.005 of the model."""
    rng = np.random.default_rng(1)
    fleet = build_fleet(64, rng)
    readings, _ = advance(fleet, initial_state(fleet, rng), 0.3, rng)
    encoder = ReadingEncoder(fleet)
    values = encoder.encode(readings, STAMP)
    assert encoder.keys == [d.encode() for d in fleet.device_ids]
    for i, value in enumerate(values):
        assert set(json.loads(value)) == FIELDS
        reading = decode_reading(value)
        assert reading.device_id == fleet.device_ids[i]
        assert reading.gpu_model == fleet.models[i]
        assert reading.host_name == fleet.hosts[i]
        assert reading.timestamp == datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=UTC)
        assert abs(reading.temperature - readings.temperature[i]) <= 0.005 + 1e-9
        assert abs(reading.power_consume - readings.power[i]) <= 0.005 + 1e-9
        assert abs(reading.gpu_util - readings.util[i]) <= 0.005 + 1e-9
        assert reading.temperature == published(readings.temperature)[i]


@settings(max_examples=200, deadline=None)
@given(
    hnp.arrays(np.float64, 3, elements=st.floats(0.0, 999.994) | st.floats(-300.0, 20_000.0)),
)
def test_any_value_round_trips_fast_or_slow_path(values: np.ndarray) -> None:
    """Any value, in the fixed width or not (negative, huge), decodes to itself rounded to hundredths."""
    fleet = build_fleet(1, np.random.default_rng(0))
    temperature, power, util = values.tolist()
    value = ReadingEncoder(fleet).encode(readings_of([temperature], [power], [util]), STAMP)[0]
    parsed = json.loads(value)
    for field, original in (("temperature", temperature), ("power_consume", power), ("gpu_util", util)):
        assert parsed[field] == np.rint(original * 100) / 100
        assert abs(parsed[field] - original) <= 0.005 + 1e-9


def test_fast_and_general_paths_agree() -> None:
    """A tick with a value the fixed width cannot hold takes the general path, with the same fields and values."""
    fleet = build_fleet(3, np.random.default_rng(0))
    encoder = ReadingEncoder(fleet)
    fast = encoder.encode(readings_of([40.0, 81.25, 999.99], [150.5, 10.0, 0.004], [0.0, 100.0, 55.555]), STAMP)
    general = encoder.encode(readings_of([40.0, 81.25, 1000.0], [150.5, 10.0, -0.5], [0.0, 100.0, 55.555]), STAMP)
    assert b'"temperature": 40.00,' in fast[0], "fast path: right-aligned in six characters"
    assert b'"gpu_util":  0.00,' in fast[0]
    assert b'"temperature":40.00,' in general[0], "general path: plain numbers"
    assert [json.loads(v) for v in fast[:2]] == [json.loads(v) for v in general[:2]]
    assert list(json.loads(fast[0])) == list(json.loads(general[0])), "same field order"
    assert json.loads(fast[2])["temperature"] == 999.99
    assert json.loads(general[2])["temperature"] == 1000.0
    assert json.loads(general[2])["power_consume"] == -0.5


def test_fleet_with_ids_of_different_lengths_is_encoded() -> None:
    """Ids of different lengths (no fixed columns) are encoded through the general path, each record intact."""
    fleet = Fleet(
        device_ids=("a", "bbbb", "cc"),
        models=("m1", "m2", "m3"),
        hosts=("h1", "h2", "h3"),
        base_temperature=np.array([30.0, 30.0, 30.0]),
    )
    values = ReadingEncoder(fleet).encode(readings_of([50.0, 60.5, 70.25], [1.0, 2.0, 3.0], [4.0, 5.0, 6.0]), STAMP)
    assert [decode_reading(v).device_id for v in values] == ["a", "bbbb", "cc"]
    assert [decode_reading(v).temperature for v in values] == [50.0, 60.5, 70.25]
    assert [decode_reading(v).host_name for v in values] == ["h1", "h2", "h3"]


def test_text_fields_are_escaped() -> None:
    """Quotes, backslashes, percent signs and non-ASCII in names come out as valid JSON strings."""
    fleet = Fleet(
        device_ids=('gpu-"0"',),
        models=("Model 100% \\ ünïcode",),
        hosts=("host\n1",),
        base_temperature=np.array([30.0]),
    )
    value = ReadingEncoder(fleet).encode(readings_of([50.0], [100.0], [20.0]), STAMP)[0]
    parsed = json.loads(value)
    assert parsed["device_id"] == 'gpu-"0"'
    assert parsed["gpu_model"] == "Model 100% \\ ünïcode"
    assert parsed["host_name"] == "host\n1"
    assert parsed["temperature"] == 50.0
