"""A seeded stream through the real alerter: exactly the expected alerts, in per-device order, counted in /metrics."""

from __future__ import annotations

import random
import time
from collections.abc import Callable

import pytest

from shared.codec import decode_alert
from slack_stand_in import SlackStandIn
from tests.alerter_support import (
    WEBHOOK_PATH,
    AlerterProcess,
    alert_count,
    alerts_by_device,
    committed,
    end_offsets,
    produce,
    read_all,
    reading,
    send_sentinels,
    wait_for_sentinels,
)
from tests.support import wait_until

pytestmark = pytest.mark.integration

THRESHOLD = 150.0
COOLDOWN = 60.0
PARTITIONS = 3


def expected_alerts(stream: list[tuple[str, float, float]]) -> dict[str, list[tuple[float, float]]]:
    """The rule stated plainly: a device alerts on a hot reading unless its last alert was under COOLDOWN ago."""
    last: dict[str, float] = {}
    alerts: dict[str, list[tuple[float, float]]] = {}
    for device, at, temperature in stream:
        if temperature > THRESHOLD and (device not in last or at - last[device] >= COOLDOWN):
            last[device] = at
            alerts.setdefault(device, []).append((at, temperature))
    return alerts


def test_seeded_stream_gives_exactly_the_expected_alerts_in_order(
    kafka_bootstrap: str,
    readings_topic: Callable[[int], str],
    slack: SlackStandIn,
    start_alerter: Callable[..., AlerterProcess],
) -> None:
    """Nine devices, 5 s apart for 5 minutes of event time, seeded hot readings (and some exactly at the
    threshold): Slack gets one alert per device per cooldown, in each device's order, and the metrics agree."""
    topic = readings_topic(PARTITIONS)
    rng = random.Random(20240601)
    base = float(int(time.time()) - 1800)  # half an hour ago, in event time
    stream = []
    for step in range(60):
        for d in range(9):
            roll = rng.random()
            temperature = 150.0 if roll < 0.05 else rng.uniform(151, 260) if roll < 0.25 else rng.uniform(40, 149)
            stream.append((f"gpu-{d:02d}", base + 5 * step + d * 0.01, round(temperature, 3)))
    expected = expected_alerts(stream)
    total = sum(len(v) for v in expected.values())
    hot = sum(1 for _, _, t in stream if t > THRESHOLD)
    assert any(t == THRESHOLD for _, _, t in stream), "the seed includes readings exactly at the threshold"

    produce(kafka_bootstrap, topic, [reading(device, t, at) for device, at, t in stream])
    # Half an hour old: with the default skew these readings would be a backlog, folded into one alert per
    # device (test_alerter_backlog.py); a skew of an hour keeps them current, for the plain cooldown rule.
    alerter = start_alerter(ALERT_COOLDOWN="60s", TEMPERATURE_THRESHOLD="150", MAX_CLOCK_SKEW="1h")
    slack.wait_for(lambda got: alert_count(got) >= total, 60)
    sentinels = send_sentinels(kafka_bootstrap, topic)
    wait_for_sentinels(slack, sentinels)  # a surplus alert would have come before these

    got = alerts_by_device(slack.received)
    assert {d: [(a["ts"], a["by_title"]["Temperature"]) for a in alerts] for d, alerts in got.items()} == {
        d: [(int(at), f"{t:.2f}°C") for at, t in alerts] for d, alerts in expected.items()
    }
    for alerts in got.values():
        assert all(a["text"].endswith("exceeding threshold of *150.00°C*") for a in alerts)
    assert {r.path for r in slack.received} == {f"/{WEBHOOK_PATH}"}

    history = read_all(kafka_bootstrap, alerter.env["ALERT_TOPIC"], total + len(sentinels))
    events = sorted(
        (alert.device_id, alert.timestamp.timestamp())
        for alert in (decode_alert(m.value()) for m in history)
        if alert.device_id not in sentinels
    )
    assert events == sorted((d, at) for d, alerts in expected.items() for at, _ in alerts), "alerts topic = Slack"
    assert all(m.key() == decode_alert(m.value()).device_id.encode() for m in history), "keyed by device"

    ours = len(sentinels)  # one hot reading and one alert each, seconds old
    wait_until(
        lambda: alerter.metric("gpu_alerter_readings_consumed_total") == len(stream) + ours, 10, "consumed count"
    )
    assert alerter.metric("gpu_alerter_alerts_raised_total") == total + ours
    assert alerter.metric("gpu_alerter_alerts_sent_total") == total + ours
    suppressed = sum(alerter.metric("gpu_alerter_alerts_suppressed_total", reason=r) for r in ("cooldown", "in_flight"))
    assert suppressed == hot - total, "every other hot reading was suppressed (by a delivered or an in-flight alert)"
    assert alerter.metric("gpu_alerter_alert_latency_seconds_count") == total + ours
    assert alerter.metric("gpu_alerter_alert_latency_seconds_bucket", le="900.0") == ours, "the rest are 30 min old"
    assert alerter.metric("gpu_alerter_partitions_assigned") == PARTITIONS
    assert alerter.metric("gpu_alerter_dead_lettered_total", reason="malformed_json") == 0
    wait_until(
        lambda: (
            all(alerter.metric("gpu_alerter_consumer_lag", partition=str(p)) == 0 for p in range(PARTITIONS))
            and alerter.metric("gpu_alerter_pending_alerts") == 0
        ),
        10,
        "lag and pending alerts to reach 0",
    )
    assert alerter.get("/healthz").status_code == 200

    assert alerter.stop() == 0
    assert committed(kafka_bootstrap, alerter.env["CONSUMER_GROUP"], topic, PARTITIONS) == end_offsets(
        kafka_bootstrap, topic, PARTITIONS
    ), "everything handled is committed on shutdown"
    assert "GPU Temperature Alert Service shutting down" in slack.received[-1].message.get("text", "")
    assert "HIGH TEMPERATURE ALERT: Device gpu-" in alerter.log
    assert WEBHOOK_PATH not in alerter.log
