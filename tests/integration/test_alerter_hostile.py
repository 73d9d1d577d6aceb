"""Nothing a producer can write stops the alerter: a hostile corpus, on the readings and the alerts topic, and a
restart with those records still uncommitted."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import pytest
from confluent_kafka import Producer

from alerter.adapters.dead_letters import REASON, REASON_CODE, SOURCE_TOPIC
from shared.codec import encode
from shared.kafka import admin_client, ensure_topic, producer_config
from tests.alerter_support import (
    AlerterProcess,
    alerts_by_device,
    committed,
    end_offsets,
    make_alert,
    read_all,
    reading,
)
from tests.support import wait_until

pytestmark = pytest.mark.integration
STAMP = "2026-11-28T10:00:00Z"
ONE_MB = 1_000_000


def _doc(**fields: object) -> bytes:
    return json.dumps({"device_id": "gpu-h", "temperature": 171.0, "timestamp": STAMP, **fields}).encode()


def _padded(size: int) -> bytes:
    head = b'{"device_id":"gpu-big","temperature":201.0,"timestamp":"' + STAMP.encode() + b'","pad":"'
    return head + b"x" * (size - len(head) - 2) + b'"}'


# (name, key, value, dead-lettered with this reason code); None: a reading that decodes (not dead-lettered).
HOSTILE: list[tuple[str, bytes | None, bytes | None, str | None]] = [
    ("invalid UTF-8 in a string (70 bytes)", b"gpu-h1",
     b'{"device_id":"\xff\xfe","temperature":171.0,"timestamp":"' + STAMP.encode() + b'"}', "malformed_json"),
    ("invalid UTF-8 in a timestamp", b"gpu-h2",
     b'{"device_id":"gpu-h2","temperature":171.0,"timestamp":"2026-11-28T10:00:00\xc3Z"}', "invalid_field"),
    ("nested a thousand deep", b"gpu-h3",
     _doc(device_id="gpu-h3")[:-1] + b',"x":' + b"[" * 1000 + b"]" * 1000 + b"}", "malformed_json"),
    ("a 5,000-digit temperature", b"gpu-h4",
     b'{"device_id":"gpu-h4","temperature":' + b"9" * 5000 + b',"timestamp":"' + STAMP.encode() + b'"}',
     "invalid_field"),
    ("an empty value", b"gpu-h5", b"", "empty"),
    ("no value (null)", b"gpu-h6", None, "empty"),
    ("JSON null", b"gpu-h7", b"null", "invalid_field"),
    ("a byte-order mark", b"gpu-h8", b"\xef\xbb\xbf" + _doc(device_id="gpu-h8"), "malformed_json"),
    ("a lone surrogate", b"gpu-h9",
     b'{"device_id":"\\ud800","temperature":171.0,"timestamp":"' + STAMP.encode() + b'"}', "malformed_json"),
    ("a 1 MB value", b"gpu-big", _padded(ONE_MB), "too_large"),
    ("invalid UTF-8 in the Kafka key", b"\xff\xfe\x00", _doc(device_id="gpu-cool", temperature=40.0), None),
    ("duplicated keys (the last one counts, as in Go)", b"gpu-dup",
     b'{"device_id":"gpu-dup","temperature":20.0,"timestamp":"' + STAMP.encode() + b'","temperature":201.0}', None),
    ("invalid UTF-8 in an unknown field name", b"gpu-cool",
     _doc(device_id="gpu-cool", temperature=41.0)[:-1] + b',"\xff\xfe":1}', None),
    ("no device (in any case)", b"gpu-h10", b'{"Temperature":171.0,"timestamp":"' + STAMP.encode() + b'"}',
     "invalid_field"),
    ("no temperature (null is none)", b"gpu-h11", b'{"device_id":"gpu-h11","temperature":null}', "invalid_field"),
]
# Readings as Go's encoding/json reads them: keys in another case, no timestamp (the record's is used), no model,
# host, power or utilisation, and the NVML publisher's extra fields. Each is hot and must alert.
LENIENT: list[tuple[str, bytes, bytes]] = [
    ("keys in another case", b"gpu-case",
     b'{"DEVICE_ID":"gpu-case","Temperature":201.0,"TimeStamp":"' + STAMP.encode() + b'","GPU_Model":"H100"}'),
    ("nothing but a device and a temperature", b"gpu-bare", b'{"device_id":"gpu-bare","temperature":201.0}'),
    ("the NVML publisher's extra fields, no power", b"gpu-nvml",
     json.dumps({"device_id": "gpu-nvml", "temperature": 201.0, "timestamp": STAMP, "gpu_model": "H100",
                 "host_name": "node-1", "gpu_util": 37, "gpu_uuid": "GPU-a0000000-0000", "gpu_index": 0,
                 "slowdown_temperature": 87, "shutdown_temperature": 92,
                 "clock_event_reasons": ["sw_power_cap"]}).encode()),
]


def _produce_raw(bootstrap: str, topic: str, records: list[tuple[bytes | None, bytes | None]]) -> None:
    producer = Producer(producer_config(bootstrap, "tests-hostile", **{"message.max.bytes": 2 * ONE_MB}))
    errors: list[Any] = []
    for key, value in records:
        producer.produce(topic, value, key=key, on_delivery=lambda error, _m: errors.append(error) if error else None)
        producer.poll(0)
    assert producer.flush(30) == 0
    assert not errors


def _hot(device: str, at: float) -> tuple[bytes | None, bytes | None]:
    return device.encode(), encode(reading(device, 200.0, at))


def test_hostile_records_are_dead_lettered_and_survive_a_restart(
    kafka_bootstrap: str,
    readings_topic: Callable[[int], str],
    unique: str,
    slack: Any,
    start_alerter: Callable[..., AlerterProcess],
) -> None:
    """Every hostile record decodes or lands on the dead-letter topic with its reason, and readings Go would read
    alert; hostile records on the alerts topic are skipped while cooldowns are restored and dead-lettered too, once
    per record and process; the alerter never exits, also when killed with all of them uncommitted and restarted;
    afterwards every offset is committed."""
    topic = readings_topic(1)
    now = time.time()
    alert_topic, dlq_topic = f"alerts-{unique}", f"dlq-{unique}"  # as alert_env names them
    ensure_topic(admin_client(kafka_bootstrap, "tests-hostile-admin"), alert_topic, partitions=1)
    restored = make_alert(device_id="gpu-restored", timestamp=reading("x", 0, now - 10).timestamp)
    _produce_raw(
        kafka_bootstrap,
        alert_topic,
        [(key, value) for _, key, value, _ in HOSTILE] + [(b"gpu-restored", encode(restored))],
    )

    records: list[tuple[bytes | None, bytes | None]] = [_hot("gpu-first", now)]
    for index, (_, key, value, _) in enumerate(HOSTILE):
        records += [(key, value), _hot(f"gpu-{index}", now + index + 1)]
    records += [(key, value) for _, key, value in LENIENT]
    records += [_hot("gpu-restored", now + 30), _hot("gpu-sentinel-1", now + 31)]
    _produce_raw(kafka_bootstrap, topic, records)
    expected = {"gpu-first", "gpu-dup", "gpu-sentinel-1", *(f"gpu-{i}" for i in range(len(HOSTILE)))}
    expected |= {key.decode() for _, key, _ in LENIENT}
    bad = [(name, key, code) for name, key, _, code in HOSTILE if code is not None]
    copies = len(bad) + len(HOSTILE)  # each unreadable reading, and every hostile record on the alerts topic

    first = start_alerter(COMMIT_INTERVAL="1h")  # nothing is committed before the kill
    slack.wait_for(lambda got: "gpu-sentinel-1" in alerts_by_device(got), 90)
    assert first.process.poll() is None, f"the alerter is still running:\n{first.log}"
    wait_until(lambda: len(read_all(kafka_bootstrap, dlq_topic, copies, timeout=5)) >= copies, 30, "DLQ copies")
    assert set(alerts_by_device(slack.received)) == expected, "gpu-restored stays silent: its cooldown was restored"
    assert "skipping an unreadable record on the alerts topic" in first.log
    first.kill()

    second = start_alerter()
    _produce_raw(kafka_bootstrap, topic, [_hot("gpu-sentinel-2", now + 40)])
    slack.wait_for(lambda got: "gpu-sentinel-2" in alerts_by_device(got), 90)
    assert second.process.poll() is None, f"the restarted alerter is still running:\n{second.log}"
    by_device = alerts_by_device(slack.received)
    assert set(by_device) == expected | {"gpu-sentinel-2"}
    assert all(len(alerts) == 1 for alerts in by_device.values()), "the re-read repeated no alert"

    dead = read_all(kafka_bootstrap, dlq_topic, 2 * copies)
    codes: dict[bytes | None, set[object]] = {}
    from_alerts: dict[bytes | None, int] = {}
    for message in dead:
        headers = dict(message.headers() or [])
        assert headers[REASON], "each copy says why"
        if headers[SOURCE_TOPIC] == alert_topic.encode():
            from_alerts[message.key()] = from_alerts.get(message.key(), 0) + 1
        else:
            codes.setdefault(message.key(), set()).add(headers[REASON_CODE])
    for name, key, reason in bad:
        assert codes.get(key) == {reason.encode()}, f"{name}: dead-lettered as {reason}"
    for name, key, _, expected_code in HOSTILE:
        if expected_code is None:
            assert key not in codes, f"{name}: a reading that decodes is not dead-lettered"
    for _, key, _ in LENIENT:
        assert key not in codes, "a reading Go would read is not dead-lettered"
    assert from_alerts == {key: 2 for _, key, _, _ in HOSTILE}, "once per alerts-topic record and process"

    assert second.stop() == 0
    assert committed(kafka_bootstrap, second.env["CONSUMER_GROUP"], topic, 1) == end_offsets(kafka_bootstrap, topic, 1)
