"""Poison records between good ones: the good still alert, the bad land on the dead-letter topic with their reason."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable

import pytest

from alerter.adapters.dead_letters import KIND, REASON, REASON_CODE, SOURCE_OFFSET, SOURCE_PARTITION, SOURCE_TOPIC
from slack_stand_in import SlackStandIn
from tests.alerter_support import (
    AlerterProcess,
    alert_count,
    alerts_by_device,
    committed,
    end_offsets,
    produce,
    read_all,
    reading,
)
from tests.support import wait_until

pytestmark = pytest.mark.integration
STAMP = "2024-05-01T12:00:00Z"


def test_poison_records_are_dead_lettered_and_good_ones_still_alert(
    kafka_bootstrap: str,
    readings_topic: Callable[[int], str],
    slack: SlackStandIn,
    start_alerter: Callable[..., AlerterProcess],
) -> None:
    """Invalid JSON, a missing or mistyped field, NaN, infinity, an oversized value and an empty one are each
    copied byte for byte to the DLQ with reason and origin headers and skipped; every good hot reading alerts;
    all offsets end up committed."""
    topic = readings_topic(2)
    now = time.time()
    bad: list[tuple[bytes, bytes | None, str]] = [
        (b"gpu-x1", b"{not json", "malformed_json"),
        (b"gpu-x2", json.dumps({"device_id": "gpu-x2", "timestamp": STAMP}).encode(), "invalid_field"),
        (
            b"gpu-x3",
            json.dumps({"device_id": "gpu-x3", "temperature": "hot", "timestamp": STAMP}).encode(),
            "invalid_field",
        ),
        (
            b"gpu-x4",
            b'{"device_id": "gpu-x4", "temperature": NaN, "timestamp": "' + STAMP.encode() + b'"}',
            "malformed_json",
        ),
        (
            b"gpu-x5",
            b'{"device_id": "gpu-x5", "temperature": 1e999, "timestamp": "' + STAMP.encode() + b'"}',
            "invalid_field",
        ),
        (
            b"gpu-x6",
            json.dumps(
                {"device_id": "gpu-x6", "temperature": 200, "timestamp": STAMP, "padding": "x" * 70_000}
            ).encode(),
            "too_large",
        ),
        (b"gpu-x7", None, "empty"),
    ]
    records: list[object] = []
    for index, (key, value, _) in enumerate(bad):
        records.append(reading(f"gpu-{index}", 160.0 + index, now + index))
        records.append((key, value, [("trace-id", f"t{index}".encode())]))
    records.append(reading("gpu-last", 250.0, now + 10))
    placed = produce(kafka_bootstrap, topic, records)  # type: ignore[arg-type]

    alerter = start_alerter()
    slack.wait_for(lambda got: alert_count(got) >= len(bad) + 1, 60)
    dead = read_all(kafka_bootstrap, alerter.env["DLQ_TOPIC"], len(bad))

    assert sorted(alerts_by_device(slack.received)) == sorted([f"gpu-{i}" for i in range(len(bad))] + ["gpu-last"])
    assert len(dead) == len(bad), "each bad record once"
    by_key = {m.key(): m for m in dead}
    for index, (key, value, code) in enumerate(bad):
        copy = by_key[key]
        headers = dict(copy.headers() or [])
        partition, offset = placed[2 * index + 1]
        assert copy.value() == value, f"{key!r} copied byte for byte"
        assert headers["trace-id"] == f"t{index}".encode(), "original headers kept"
        assert headers[KIND] == b"record"
        assert headers[REASON_CODE] == code.encode(), key
        assert headers[REASON], "the full reason is given"
        assert (headers[SOURCE_TOPIC], headers[SOURCE_PARTITION], headers[SOURCE_OFFSET]) == (
            topic.encode(),
            str(partition).encode(),
            str(offset).encode(),
        )
    expected = {
        code: sum(1 for *_, c in bad if c == code) for code in ("malformed_json", "invalid_field", "too_large", "empty")
    }

    def dead_lettered() -> dict[str, float]:
        return {code: alerter.metric("gpu_alerter_dead_lettered_total", reason=code) for code in expected}

    wait_until(lambda: dead_lettered() == expected, 10, "dead-letter counts by reason")
    assert alerter.metric("gpu_alerter_readings_consumed_total") == len(records)
    for code in ("malformed_json", "invalid_field", "too_large", "empty"):
        assert re.search(
            rf"skipping an unreadable record .* topic={topic} partition=\d offset=\d+ reason={code}", alerter.log
        ), f"a {code} record is logged with topic, partition and offset"

    assert alerter.stop() == 0
    assert committed(kafka_bootstrap, alerter.env["CONSUMER_GROUP"], topic, 2) == end_offsets(kafka_bootstrap, topic, 2)
