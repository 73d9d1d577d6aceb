"""Issue 11, point 6: a backlog does not become a storm. The real alerter, killed; an hour of event time in the
topic; restarted: one message per hot device."""

from __future__ import annotations

import random
import re
import time
from collections.abc import Callable

import pytest

from slack_stand_in import SlackStandIn
from tests.alerter_support import AlerterProcess, alerts_by_device, produce, reading, send_sentinels, wait_for_sentinels
from tests.support import wait_until

pytestmark = pytest.mark.integration
SUMMARY = re.compile(r"from .* UTC to .* UTC \((\d+) min\): (\d+) readings, peak \*([0-9.]+)°C\*$")


def test_an_hour_behind_is_one_message_per_hot_device(
    kafka_bootstrap: str,
    readings_topic: Callable[[int], str],
    slack: SlackStandIn,
    start_alerter: Callable[..., AlerterProcess],
) -> None:
    """Six GPUs report every 10 s for an hour while the alerter is down (kill -9); four run hot (one of them only
    in the first half hour), two never do. Restarted, it posts one backlog message per hot GPU, saying from when
    to when, how many readings and the peak, instead of twelve per GPU (one per 5-minute cooldown)."""
    topic = readings_topic(2)
    first = start_alerter()
    first.wait_ready()
    first.kill()

    rng = random.Random(11)
    end = time.time() - 60
    stream, peaks = [], dict[str, float]()
    for step in range(360):
        at = end - 3600 + step * 10
        for d in range(6):
            hot = d < 3 or (d == 3 and step < 180)
            temperature = round(rng.uniform(151.0, 220.0) if hot else rng.uniform(40.0, 140.0), 2)
            if hot:
                peaks[f"gpu-{d}"] = max(peaks.get(f"gpu-{d}", 0.0), temperature)
            stream.append(reading(f"gpu-{d}", temperature, at))
    produce(kafka_bootstrap, topic, stream)

    second = start_alerter()
    wait_until(lambda: second.metric("gpu_alerter_readings_consumed_total") >= len(stream), 60, "the backlog read")
    # Backlog messages go out once a partition is current or has stayed read to its end for 5 s; then a sentinel
    # on every partition: anything more, a repeat included, would have come before it.
    slack.wait_for(lambda got: len(alerts_by_device(got)) >= 4, 60)
    wait_for_sentinels(slack, send_sentinels(kafka_bootstrap, topic))

    got = alerts_by_device(slack.received)
    assert sorted(got) == ["gpu-0", "gpu-1", "gpu-2", "gpu-3"]
    for device, [message] in got.items():
        assert message["title"] == "🔥 GPU RAN HOT WHILE ALERTS WERE BEHIND 🔥"
        assert message["by_title"]["Temperature"] == f"{peaks[device]:.2f}°C"
        match = SUMMARY.search(message["text"])
        assert match is not None, message["text"]
        minutes, count = int(match[1]), int(match[2])
        if device == "gpu-3":  # hot in the first half hour only: all of it late
            assert (minutes, count) == (30, 180)
        else:  # hot to the end: its late readings, and the first current one, which sends the message
            assert 54 <= minutes <= 56
            assert 330 <= count <= 340
    assert second.metric("gpu_alerter_alerts_suppressed_total", reason="folded") >= 4 * 170
    assert "HIGH TEMPERATURE WHILE BEHIND: Device gpu-0 ran above 150.00°C" in second.log
