"""Records are the bytes Go's json.Marshal writes for the original struct, pinned by vectors Go itself wrote.

tests/go_reference/vectors.json comes from `go run .` in tests/go_reference (standard library only):
floats across every magnitude and both sides of the exponent cut-offs, hostile strings, times, and
whole readings of the original's TemperatureReading.
"""

from __future__ import annotations

import base64
import itertools
import json
import math
import struct
import tracemalloc
from functools import cache
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from publisher.encoding import ReadingEncoder
from publisher.gojson import go_float, go_object, go_string, needs_go_float, rfc3339_nano, rfc3339_nano_many
from publisher.simulator import Fleet, Readings, advance, build_fleet, initial_state
from shared.codec import decode_reading

VECTORS = Path(__file__).resolve().parents[1] / "go_reference" / "vectors.json"
FIELD_ORDER = ["device_id", "temperature", "timestamp", "gpu_model", "host_name", "power_consume", "gpu_util"]


@cache
def vectors() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(VECTORS.read_text())
    return data


def from_bits(bits: str) -> float:
    value: float = struct.unpack(">d", bytes.fromhex(bits))[0]
    return value


def readings_of(temperature: list[float], power: list[float], util: list[float]) -> Readings:
    return Readings(
        temperature=np.array(temperature), power=np.array(power), util=np.array(util),
        abnormal=np.zeros(len(temperature), dtype=bool),
    )


def fleet_of(ids: list[str], models: list[str], hosts: list[str]) -> Fleet:
    return Fleet(tuple(ids), tuple(models), tuple(hosts), np.full(len(ids), 60.0))


def test_vectors_come_from_go() -> None:
    """The reference file was written by a Go toolchain and holds every kind of vector."""
    data = vectors()
    assert data["go"].startswith("go1.")
    assert len(data["floats"]) > 2000
    assert len(data["strings"]) >= 18
    assert len(data["times"]) > 100
    assert len(data["readings"]) == 40


def test_floats_are_written_as_go_writes_them() -> None:
    """Every reference float: shortest round-trip text, positional from 1e-6 to 1e21, `1e-7` / `1e+21` beyond."""
    for vector in vectors()["floats"]:
        value = from_bits(vector["bits"])
        assert go_float(value).decode() == vector["json"], value


def test_msgspec_agrees_with_go_wherever_the_fast_path_uses_it() -> None:
    """Outside the indices needs_go_float picks, msgspec's float text is Go's, on every reference float."""
    values = np.array([from_bits(v["bits"]) for v in vectors()["floats"]])
    exact = set(needs_go_float(values).tolist())
    for index, vector in enumerate(vectors()["floats"]):
        if index not in exact:
            assert msgspec.json.encode(float(values[index])).decode() == vector["json"]


@settings(max_examples=3000, deadline=None)
@given(st.floats(allow_nan=False, allow_infinity=False) | st.sampled_from([1e-6, 1e21, 9.999999999999999e20,
                                                                            9.999999999999999e-7, 1e-5, 1e16]))
def test_any_float_reads_back_exactly_and_the_fast_path_agrees(value: float) -> None:
    """For any float64: the text decodes to the identical float, and the fast path writes the same text."""
    text = go_float(value)
    assert struct.pack(">d", float(text)) == struct.pack(">d", value)
    assert (b"e" in text) == (value != 0 and not 1e-6 <= abs(value) < 1e21)
    assert b"e-0" not in text
    assert not text.endswith(b".0")
    fast = ReadingEncoder(fleet_of(["d"], ["m"], ["h"])).encode(readings_of([value], [value], [value]))[0]
    assert json.loads(fast, parse_float=str, parse_int=str)["temperature"] == text.decode()


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_non_finite_floats_are_refused_like_go(value: float) -> None:
    """NaN and infinities have no JSON form; Go's Marshal fails on them, and so does go_float."""
    with pytest.raises(ValueError, match="unsupported value"):
        go_float(value)


def test_strings_are_escaped_as_go_escapes_them() -> None:
    """HTML characters, controls, U+2028/2029 and each byte of invalid UTF-8 come out exactly as Go writes them."""
    for vector in vectors()["strings"]:
        raw = base64.b64decode(vector["base64"])
        assert go_string(raw).decode() == vector["json"], raw
        if raw.isascii() or _valid_utf8(raw):
            assert go_string(raw.decode()).decode() == vector["json"]


def _valid_utf8(data: bytes) -> bool:
    try:
        data.decode()
    except UnicodeDecodeError:
        return False
    return True


@settings(max_examples=500, deadline=None)
@given(st.text() | st.binary().map(lambda b: b.decode("utf-8", "surrogateescape")))
def test_any_string_is_valid_json_that_keeps_valid_text(text: str) -> None:
    """Any str (lone surrogates too) becomes valid JSON; well-formed text reads back unchanged."""
    encoded = go_string(text)
    decoded = json.loads(encoded)
    if _valid_utf8(text.encode("utf-8", "surrogatepass")):
        assert decoded == text
    assert not set(encoded.decode()) & {"<", ">", "&", "\u2028", "\u2029"}


def test_times_are_rfc3339_with_nanoseconds_trimmed() -> None:
    """Times print as Go's RFC3339Nano in UTC, one at a time and a whole tick at once."""
    times = vectors()["times"]
    for vector in times:
        assert json.dumps(rfc3339_nano(vector["unix_ns"])) == vector["json"]
    many = rfc3339_nano_many(np.array([v["unix_ns"] for v in times], dtype=np.int64))
    assert [json.dumps(t) for t in many] == [v["json"] for v in times]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.integers(1_700_000_000_000_000_000, 1_700_000_030_000_000_000), min_size=1, max_size=50),
       st.integers(0, 9))
def test_vectorized_times_match_one_at_a_time(stamps: list[int], round_to: int) -> None:
    """Any tick's worth of times, many with trailing zeros, formats exactly as each alone."""
    values = np.array([s - s % 10**round_to for s in stamps], dtype=np.int64)
    assert rfc3339_nano_many(values) == [rfc3339_nano(int(v)) for v in values]


def test_whole_readings_are_byte_for_byte_what_go_marshals() -> None:
    """Each reference reading, through the tick encoder, is exactly the bytes Go's json.Marshal wrote."""
    for vector in vectors()["readings"]:
        model = base64.b64decode(vector["gpu_model_base64"]).decode("utf-8", "surrogateescape")
        fleet = fleet_of([vector["device_id"]], [model], [vector["host_name"]])
        encoder = ReadingEncoder(fleet, clock_ns=itertools.repeat(int(vector["unix_ns"])).__next__)
        readings = readings_of(
            [from_bits(vector["temperature_bits"])], [from_bits(vector["power_consume_bits"])],
            [from_bits(vector["gpu_util_bits"])],
        )
        assert encoder.encode(readings) == [vector["json"].encode()]
        fields = [
            ("device_id", vector["device_id"]), ("temperature", from_bits(vector["temperature_bits"])),
            ("timestamp", rfc3339_nano(vector["unix_ns"])), ("gpu_model", model),
            ("host_name", vector["host_name"]), ("power_consume", from_bits(vector["power_consume_bits"])),
            ("gpu_util", from_bits(vector["gpu_util_bits"])),
        ]
        assert go_object(fields) == vector["json"].encode()


def test_simulated_tick_keeps_full_precision_field_order_and_a_time_per_reading() -> None:
    """A simulated tick: the original's key order, the exact simulated floats, one clock reading per record."""
    rng = np.random.default_rng(1)
    fleet = build_fleet(64, rng)
    readings, _ = advance(fleet, initial_state(fleet, rng), 0.3, rng)
    ticks = iter(range(1_714_564_800_000_000_000, 1_714_564_900_000_000_000, 1_234_567))
    encoder = ReadingEncoder(fleet, clock_ns=lambda: next(ticks))
    values = encoder.encode(readings)
    assert encoder.keys == [d.encode() for d in fleet.device_ids]
    stamps = []
    for i, value in enumerate(values):
        parsed = json.loads(value)
        assert list(parsed) == FIELD_ORDER
        assert (parsed["temperature"], parsed["power_consume"], parsed["gpu_util"]) == (
            readings.temperature[i], readings.power[i], readings.util[i])
        assert (parsed["device_id"], parsed["gpu_model"], parsed["host_name"]) == (
            fleet.device_ids[i], fleet.models[i], fleet.hosts[i])
        assert decode_reading(value).device_id == fleet.device_ids[i]
        assert b" " not in value.replace(fleet.models[i].encode(), b"")
        stamps.append(parsed["timestamp"])
    assert len(set(stamps)) == 64, "each reading has its own time"


def test_each_devices_times_increase_even_if_the_clock_steps_back() -> None:
    """A wall clock that jumps back never gives a device a timestamp at or before its previous one."""
    fleet = build_fleet(2, np.random.default_rng(0))
    clock = iter([5_000, 5_001, 1_000, 1_001])
    encoder = ReadingEncoder(fleet, clock_ns=lambda: next(clock))
    readings = readings_of([50.0, 60.0], [1.0, 2.0], [3.0, 4.0])
    first = [json.loads(v)["timestamp"] for v in encoder.encode(readings)]
    second = [json.loads(v)["timestamp"] for v in encoder.encode(readings)]
    assert first == ["1970-01-01T00:00:00.000005Z", "1970-01-01T00:00:00.000005001Z"]
    assert second == ["1970-01-01T00:00:00.000005001Z", "1970-01-01T00:00:00.000005002Z"]


def test_integral_and_tiny_values_take_go_text_in_a_tick() -> None:
    """In a tick, integral values print without `.0` and tiny ones in Go's exponent form, as Go writes them."""
    fleet = build_fleet(3, np.random.default_rng(0))
    encoder = ReadingEncoder(fleet, clock_ns=lambda: 0)
    values = encoder.encode(readings_of([100.0, 81.25, 1e-7], [0.0, -0.0, 250.5], [1e21, 5e-6, 99.5]))
    assert b'"temperature":100,' in values[0]
    assert b'"power_consume":0,' in values[0]
    assert b'"gpu_util":1e+21}' in values[0]
    assert b'"power_consume":-0,' in values[1]
    assert b'"gpu_util":0.000005}' in values[1]
    assert b'"temperature":1e-7,' in values[2]


def test_text_fields_are_escaped_the_go_way() -> None:
    """Quotes, percent signs, HTML characters and line separators in names come out as Go escapes them."""
    fleet = fleet_of(['gpu-"0"<1>'], ["Model 100% \\ ünïcode"], ["host\u2028&1"])
    value = ReadingEncoder(fleet, clock_ns=lambda: 0).encode(readings_of([50.5], [100.5], [20.5]))[0]
    assert value.startswith(b'{"device_id":"gpu-\\"0\\"\\u003c1\\u003e",')
    assert b'"host_name":"host\\u2028\\u00261"' in value
    assert json.loads(value)["gpu_model"] == "Model 100% \\ ünïcode"


def test_encoding_tick_after_tick_keeps_no_memory() -> None:
    """Encoding holds nothing from one tick to the next (msgspec leaked every record given an iterator)."""
    rng = np.random.default_rng(3)
    fleet = build_fleet(2000, rng)
    readings, _ = advance(fleet, initial_state(fleet, rng), 0.05, rng)
    encoder = ReadingEncoder(fleet)
    for _ in range(3):
        encoder.encode(readings)
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for _ in range(20):
            encoder.encode(readings)
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert grown < 200_000, f"{grown} bytes kept after 20 ticks of 2,000 readings"
