"""Issue 14 on the real cluster with real processes: a GPU heating up gets a forecast, a warning, a critical
alert and, once cool, a resolved notice; one that stops reporting gets a silent alert and a notice when it is
back; across a kill -9 between warning and critical, and with two instances in one group."""

from __future__ import annotations

import json
import math
import random
import time
from collections.abc import Callable
from typing import Any

import pytest

from shared.models import TemperatureReading
from slack_stand_in import SlackStandIn
from tests.alerter_support import (
    AlerterProcess,
    alerts_by_device,
    produce,
    read_all,
    reading,
    send_sentinels,
    wait_for_sentinels,
)
from tests.support import wait_until

pytestmark = pytest.mark.integration

EARLY = {
    "TEMPERATURE_THRESHOLD": "150",
    "WARNING_THRESHOLD": "130",
    "FORECAST_HORIZON": "10m",
    "FORECAST_WINDOW": "2m",
    "RESOLVE_AFTER": "1m",
    "SILENCE_AFTER": "30s",
    # The scenario's 12 minutes of event time are produced at once, in the recent past: a skew of an hour keeps
    # them current (with the default, readings over 5 minutes old would be a backlog, folded).
    "MAX_CLOCK_SKEW": "1h",
}
FORECAST, WARNING, CRITICAL = "📈 GPU HEADING FOR ITS THRESHOLD", "⚠️ GPU RUNNING HOT", "🔥 GPU IS MELTING 🔥"
RESOLVED, SILENT, REPORTS = "✅ GPU TEMPERATURE BACK TO NORMAL", "🔇 GPU SILENT", "✅ GPU REPORTING AGAIN"
HEATING = [FORECAST, WARNING, CRITICAL, RESOLVED]
EVERY = 2.0  # seconds between readings
END = 720.0  # seconds of the scenario


def heating(device: str, base: float, seed: int) -> list[TemperatureReading]:
    """3 min near 60 °C, then 20 °C/min up to 160 °C (a failing fan), back to 60 °C (tau 15 s), 2 min there."""
    rng = random.Random(seed)
    series = []
    for step in range(int(END / EVERY)):
        t = step * EVERY
        rise = min(max(0.0, t - 180), 300) * 20 / 60
        if t > 480:
            rise *= math.exp(-(t - 480) / 15)
        series.append(reading(device, round(60.0 + rise + rng.uniform(-1, 1), 2), base + t))
    return series


def quiet(device: str, base: float, until: float) -> list[TemperatureReading]:
    """60 °C every 2 s until `until` seconds into the scenario, then nothing."""
    return [reading(device, 60.0, base + step * EVERY) for step in range(int(until / EVERY))]


def titles(received: list[Any]) -> dict[str, list[str]]:
    """Titles of the alert messages the stand-in received, by device (sentinels left out)."""
    return {device: [a["title"] for a in alerts] for device, alerts in alerts_by_device(received).items()}


def recorded_kinds(bootstrap: str, topic: str, expected: int) -> dict[str, list[str]]:
    """The `kind` of each record on the alerts topic, by device (sentinels left out), in partition order."""
    kinds: dict[str, list[str]] = {}
    for message in read_all(bootstrap, topic, expected):
        record = json.loads(message.value() or b"{}")
        if not record["device_id"].startswith("sentinel-"):
            kinds.setdefault(record["device_id"], []).append(record["kind"])
    return kinds


def in_order(messages: list[TemperatureReading]) -> list[TemperatureReading]:
    return sorted(messages, key=lambda r: r.timestamp)


def test_every_kind_from_one_alerter(
    kafka_bootstrap: str,
    readings_topic: Callable[[int], str],
    slack: SlackStandIn,
    start_alerter: Callable[..., AlerterProcess],
) -> None:
    """A heating GPU: forecast, warning, critical, resolved, in that order, once each; a GPU that stops: silent
    (judged on the partition's clock: the other GPU goes on), then reporting again when it is back. Every one
    is recorded on the alerts topic with its kind; the critical message is the original's."""
    topic = readings_topic(1)
    base = time.time() - END - 60
    alerter = start_alerter(**EARLY)
    alerter.wait_ready()
    produce(kafka_bootstrap, topic, in_order(heating("gpu-hot", base, 1) + quiet("gpu-quiet", base, 600)))
    slack.wait_for(lambda got: titles(got) == {"gpu-hot": HEATING, "gpu-quiet": [SILENT]}, 60)

    produce(kafka_bootstrap, topic, [reading("gpu-quiet", 61.0, base + END + 2)])
    slack.wait_for(lambda got: titles(got).get("gpu-quiet") == [SILENT, REPORTS], 30)
    wait_for_sentinels(slack, send_sentinels(kafka_bootstrap, topic, at=base + END + 4))
    assert titles(slack.received) == {"gpu-hot": HEATING, "gpu-quiet": [SILENT, REPORTS]}

    got = alerts_by_device(slack.received)
    forecast, warning, critical, resolved = got["gpu-hot"]
    assert "expected to reach 150.0 °C in about" in forecast["text"]
    assert warning["by_title"]["Threshold"] == "130.00°C"
    assert critical["text"].endswith("exceeding threshold of *150.00°C*")
    assert resolved["text"].startswith("Temperature of *")
    assert "below *125.00°C* for 1 min" in resolved["text"]
    assert got["gpu-quiet"][0]["text"] == "No readings from gpu-quiet on node-1 for 2 min; last 60.0 °C"
    assert recorded_kinds(kafka_bootstrap, alerter.env["ALERT_TOPIC"], 7) == {
        "gpu-hot": ["forecast", "warning", "critical", "resolved"],
        "gpu-quiet": ["silent", "resolved"],
    }
    for kind in ("forecast", "warning", "critical", "resolved", "silent"):
        assert alerter.metric("gpu_alerter_notifications_raised_total", kind=kind) >= 1


def test_a_kill_between_warning_and_critical_repeats_nothing_and_misses_nothing(
    kafka_bootstrap: str,
    readings_topic: Callable[[int], str],
    slack: SlackStandIn,
    start_alerter: Callable[..., AlerterProcess],
) -> None:
    """The GPU's readings up to its warning; kill -9 once the warning is on the alerts topic; the rest; restart:
    the critical alert and the resolved notice come, the forecast and the warning do not come again."""
    topic = readings_topic(1)
    base = time.time() - END - 60
    series = heating("gpu-hot", base, 2)
    split = next(i for i, r in enumerate(series) if r.temperature > 135.0)
    first = start_alerter(**EARLY)
    first.wait_ready()
    produce(kafka_bootstrap, topic, series[:split])
    slack.wait_for(lambda got: titles(got) == {"gpu-hot": [FORECAST, WARNING]}, 60)
    read_all(kafka_bootstrap, first.env["ALERT_TOPIC"], 2, timeout=10)
    wait_until(lambda: first.metric("gpu_alerter_pending_alerts") == 0, 10, "both recorded")
    first.kill()

    produce(kafka_bootstrap, topic, series[split:])
    second = start_alerter(**EARLY)
    slack.wait_for(lambda got: titles(got).get("gpu-hot") == HEATING, 60)
    wait_for_sentinels(slack, send_sentinels(kafka_bootstrap, topic, at=base + END + 2))
    assert titles(slack.received) == {"gpu-hot": HEATING}
    assert second.metric("gpu_alerter_cooldowns_restored_total") >= 2
    assert recorded_kinds(kafka_bootstrap, second.env["ALERT_TOPIC"], 4) == {
        "gpu-hot": ["forecast", "warning", "critical", "resolved"]
    }


def test_two_instances_in_one_group_and_a_hand_over(
    kafka_bootstrap: str,
    readings_topic: Callable[[int], str],
    slack: SlackStandIn,
    start_alerter: Callable[..., AlerterProcess],
) -> None:
    """Four partitions, two instances: six heating GPUs each get forecast then warning once. One instance stops;
    the other takes its partitions with what the alerts topic says of them, and every GPU gets its critical
    alert and resolved notice, none a second forecast or warning; two GPUs that stop are called silent once."""
    topic = readings_topic(4)
    base = time.time() - END - 60
    one, two = start_alerter(**EARLY), start_alerter(**EARLY)

    def split() -> bool:
        owned = [a.metric("gpu_alerter_partitions_assigned") for a in (one, two)]
        return sum(owned) == 4 and min(owned) >= 1

    wait_until(split, 60, "both instances to own partitions")
    hot = [f"gpu-hot-{d}" for d in range(6)]
    series = {device: heating(device, base, d) for d, device in enumerate(hot)}
    cut = {device: next(i for i, r in enumerate(s) if r.temperature > 135.0) for device, s in series.items()}
    produce(kafka_bootstrap, topic, in_order([r for device in hot for r in series[device][: cut[device]]]))
    slack.wait_for(lambda got: all(titles(got).get(d) == [FORECAST, WARNING] for d in hot), 60)
    sent = [a.metric("gpu_alerter_alerts_sent_total") for a in (one, two)]
    assert min(sent) >= 1, f"both instances posted: {sent}"
    wait_until(lambda: sum(a.metric("gpu_alerter_pending_alerts") for a in (one, two)) == 0, 10, "all recorded")

    assert two.stop() == 0
    wait_until(lambda: one.metric("gpu_alerter_partitions_assigned") == 4, 30, "the survivor to own all")
    rest = [r for device in hot for r in series[device][cut[device] :]]
    rest += quiet("gpu-quiet-0", base, 600) + quiet("gpu-quiet-1", base, 600)
    produce(kafka_bootstrap, topic, in_order(rest))
    expected = {**{d: HEATING for d in hot}, "gpu-quiet-0": [SILENT], "gpu-quiet-1": [SILENT]}
    slack.wait_for(lambda got: titles(got) == expected, 60)
    wait_for_sentinels(slack, send_sentinels(kafka_bootstrap, topic, at=base + END + 2))
    assert titles(slack.received) == expected
