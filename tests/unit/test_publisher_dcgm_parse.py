"""dcgm-exporter pages to readings (pure): labels and values as dcgm-exporter writes them, hostile pages refused."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from publisher.dcgm_source import parse_exposition
from tests.gpu_support import dcgm_page

BLANK = 9223372036854775794  # DCGM_INT64_NOT_SUPPORTED, as dcgm-exporter prints it
GPUS = [
    {"index": 0, "uuid": "GPU-aaaa", "model": "NVIDIA H100 80GB HBM3", "temp": 51, "power": 312.25, "util": 88,
     "mem_temp": 60},
    {"index": 1, "uuid": "GPU-bbbb", "model": "NVIDIA H100 80GB HBM3", "temp": 47, "power": BLANK, "util": 3,
     "mem_temp": BLANK},
]


def test_one_reading_per_gpu_with_labels_and_values() -> None:
    """Temperature, power (W), utilization and memory temperature, model, host and index from the labels."""
    readings, skipped = parse_exposition(dcgm_page("node-a", GPUS), "fallback", 7)
    assert skipped == 0
    assert [json.loads(r.encode()) for r in readings] == [
        {"device_id": "GPU-aaaa", "temperature": 51, "timestamp": "1970-01-01T00:00:00.000000007Z",
         "gpu_model": "NVIDIA H100 80GB HBM3", "host_name": "node-a", "power_consume": 312.25, "gpu_util": 88,
         "gpu_uuid": "GPU-aaaa", "gpu_index": 0, "memory_temperature": 60},
        {"device_id": "GPU-bbbb", "temperature": 47, "timestamp": "1970-01-01T00:00:00.000000007Z",
         "gpu_model": "NVIDIA H100 80GB HBM3", "host_name": "node-a", "gpu_util": 3, "gpu_uuid": "GPU-bbbb",
         "gpu_index": 1},
    ]


def test_hostname_label_of_either_spelling_or_the_endpoint_host() -> None:
    """`hostname` (dcgm-exporter 4.x) and `Hostname` (before) both name the host; without either, the URL's host."""
    lower, _ = parse_exposition(dcgm_page("node-b", GPUS[:1], hostname_label="hostname"), "fallback", 0)
    none, _ = parse_exposition(dcgm_page(None, GPUS[:1]), "10.0.0.7", 0)
    assert lower[0].host_name == "node-b"
    assert none[0].host_name == "10.0.0.7"


def test_a_gpu_without_a_usable_temperature_is_skipped_and_counted() -> None:
    """No temperature, or DCGM's blank instead of one: no reading for that GPU, counted as skipped."""
    page = dcgm_page("n", [{**GPUS[0], "temp": BLANK}, {"index": 1, "uuid": "GPU-c", "model": "m"}, GPUS[1]])
    readings, skipped = parse_exposition(page, "f", 0)
    assert [r.device_id for r in readings] == ["GPU-bbbb"]
    assert skipped == 2


@pytest.mark.parametrize("value", ["NaN", "+Inf", "-5000", "1e300", "101"])
def test_implausible_values_are_left_out(value: str) -> None:
    """NaN, infinities and out-of-range numbers are left out like an unsupported value."""
    page = dcgm_page("n", [{**GPUS[0], "util": value, "power": value}])
    reading = parse_exposition(page, "f", 0)[0][0]
    assert reading.gpu_util is None
    assert reading.power_consume is None or reading.power_consume == 101.0


@settings(max_examples=400, deadline=None)
@given(st.text(max_size=400) | st.builds(lambda page, cut, junk: page[:cut] + junk + page[cut:],
                                         st.just(dcgm_page("n", GPUS)), st.integers(0, 2000), st.text(max_size=20)))
def test_any_page_gives_readings_or_a_value_error(text: str) -> None:
    """Whatever an endpoint serves, parsing yields valid readings or raises ValueError (the one 'unparsable')."""
    try:
        readings, _ = parse_exposition(text, "f", 0)
    except ValueError:
        return
    for reading in readings:
        json.loads(reading.encode())
