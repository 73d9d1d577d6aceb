"""kill -9 with alerts in flight, then restart: every alert arrives, and no device alerts twice within its cooldown."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from slack_stand_in import SlackStandIn
from tests.alerter_support import (
    AlerterProcess,
    alert_count,
    alerts_by_device,
    produce,
    read_all,
    reading,
    send_sentinels,
    wait_for_sentinels,
)
from tests.support import wait_until

pytestmark = pytest.mark.integration


def test_kill_9_mid_stream_loses_no_alert_and_repeats_none(
    kafka_bootstrap: str,
    readings_topic: Callable[[int], str],
    slack: SlackStandIn,
    start_alerter: Callable[..., AlerterProcess],
) -> None:
    """gpu-0/1 alert and are delivered; with Slack failing, gpu-2/3 alerts are in flight and gpu-0/1 are hot again
    (within cooldown) after them. SIGKILL, restart: gpu-2/3 arrive once, and gpu-0/1, whose later readings are
    read again, stay silent thanks to the cooldowns restored from the alerts topic."""
    topic = readings_topic(1)
    first = start_alerter()
    first.wait_ready()
    now = time.time()
    produce(kafka_bootstrap, topic, [reading("gpu-0", 180.0, now), reading("gpu-1", 181.0, now + 0.1)])
    slack.wait_for(lambda got: alert_count(got) >= 2, 30)
    read_all(kafka_bootstrap, first.env["ALERT_TOPIC"], 2, timeout=10)  # both are recorded as delivered

    slack.fail(500)
    later = [
        reading("gpu-2", 182.0, now + 1),
        reading("gpu-3", 183.0, now + 1.1),
        *(reading(f"gpu-{d}", 60.0, now + 2 + d) for d in range(4)),
        reading("gpu-0", 190.0, now + 10),
        reading("gpu-1", 191.0, now + 10.1),
    ]
    produce(kafka_bootstrap, topic, later)
    wait_until(lambda: first.metric("gpu_alerter_pending_alerts") == 2, 30, "gpu-2 and gpu-3 to be in flight")
    wait_until(lambda: first.metric("gpu_alerter_readings_consumed_total") == 2 + len(later), 10, "all read")
    assert first.metric("gpu_alerter_alerts_suppressed_total", reason="cooldown") == 2
    first.kill()
    assert first.process.returncode == -9

    slack.recover()
    second = start_alerter()
    slack.wait_for(lambda got: alert_count(got) >= 4, 60)
    wait_until(lambda: second.metric("gpu_alerter_readings_consumed_total") >= len(later), 10, "the re-read")
    wait_for_sentinels(slack, send_sentinels(kafka_bootstrap, topic))  # a repeat would have come before these

    got = alerts_by_device(slack.received)
    assert {device: [a["by_title"]["Temperature"] for a in alerts] for device, alerts in got.items()} == {
        "gpu-0": ["180.00°C"],
        "gpu-1": ["181.00°C"],
        "gpu-2": ["182.00°C"],
        "gpu-3": ["183.00°C"],
    }
    assert second.metric("gpu_alerter_cooldowns_restored_total") >= 2
    assert second.metric("gpu_alerter_alerts_suppressed_total", reason="cooldown") == 2
    assert "restored 2 delivered alerts of 2 devices for partition 0" in second.log
