"""The real alerter (`python -m alerter`) with both receivers: the Slack stand-in and a real Alertmanager 0.25.

A hot reading reaches both, with the labels Alertmanager routes on; while the GPU stays hot (readings the cooldown
keeps out of Slack) the alert is kept firing past its first endsAt; and with SLACK_WEBHOOK_URL unset Alertmanager
alone is a receiver.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path

import pytest

from slack_stand_in import SlackStandIn
from tests.alerter_support import AlerterProcess, alerts_by_device, produce, reading
from tests.alertmanager_support import AlertmanagerProcess, WebhookSink, running_alertmanager
from tests.support import wait_until

pytestmark = pytest.mark.integration

RESEND = "1s"  # ALERTMANAGER_RESEND_INTERVAL: an alert posted once holds for 4 s unless re-sent


@pytest.fixture
def alertmanager(tmp_path: Path) -> Iterator[tuple[AlertmanagerProcess, WebhookSink]]:
    with running_alertmanager(tmp_path / "alertmanager") as pair:
        yield pair


def test_a_hot_reading_reaches_slack_and_alertmanager_and_stays_firing_while_hot(
    kafka_bootstrap: str,
    readings_topic: Callable[[int], str],
    slack: SlackStandIn,
    alertmanager: tuple[AlertmanagerProcess, WebhookSink],
    start_alerter: Callable[..., AlerterProcess],
) -> None:
    """One hot reading gives one Slack message (no channel named, SLACK_CHANNEL being empty) and one Alertmanager
    alert labelled alertname=GpuTemperatureCritical, severity, device_id, host_name, gpu_model, starting at the
    reading's time; further hot readings inside the cooldown stay out of Slack but keep the alert firing past its
    first endsAt (4 s), and Alertmanager notifies it once."""
    am, webhook = alertmanager
    topic = readings_topic(1)
    alerter = start_alerter(ALERTMANAGER_URL=am.url, ALERTMANAGER_RESEND_INTERVAL=RESEND, SLACK_CHANNEL="")
    alerter.wait_ready()
    first = time.time()
    produce(kafka_bootstrap, topic, [reading("gpu-am", 201.5, first, host_name="node-7", gpu_model="H100")])

    slack.wait_for(lambda got: "gpu-am" in alerts_by_device(got), 30)
    [shown] = wait_until(lambda: am.alerts(device_id="gpu-am"), 30, "the alert in Alertmanager")
    assert shown["labels"] == {
        "alertname": "GpuTemperatureCritical",
        "severity": "critical",
        "device_id": "gpu-am",
        "host_name": "node-7",
        "gpu_model": "H100",
    }
    assert abs(datetime.fromisoformat(shown["startsAt"]).timestamp() - first) < 0.001, "the reading's event time"
    assert shown["annotations"]["summary"] == "GPU gpu-am on node-7 at 201.50°C, above 150.00°C"
    [posted] = [r.message for r in slack.received if "attachments" in r.message]
    assert "channel" not in posted, "SLACK_CHANNEL set but empty: the webhook's own channel"

    while time.time() < first + 7:  # the GPU stays hot: a reading every half second, all within the cooldown
        produce(kafka_bootstrap, topic, [reading("gpu-am", 202.0, time.time(), host_name="node-7", gpu_model="H100")])
        time.sleep(0.5)
    [still] = am.alerts(device_id="gpu-am")
    assert still["status"]["state"] == "active", "re-sent while hot, so alive past its first endsAt"
    assert len(alerts_by_device(slack.received)["gpu-am"]) == 1
    assert len([a for a in webhook.alerts("firing") if a["labels"]["device_id"] == "gpu-am"]) == 1
    assert alerter.metric("gpu_alerter_alertmanager_alerts_total", what="firing") == 1
    assert alerter.metric("gpu_alerter_alertmanager_alerts_total", what="resent") >= 1
    assert alerter.metric("gpu_alerter_alerts_sent_total") == 1
    assert alerter.stop() == 0


def test_alertmanager_alone_is_enough(
    kafka_bootstrap: str,
    readings_topic: Callable[[int], str],
    slack: SlackStandIn,
    alertmanager: tuple[AlertmanagerProcess, WebhookSink],
    start_alerter: Callable[..., AlerterProcess],
) -> None:
    """Without SLACK_WEBHOOK_URL the alerter starts with Alertmanager as its only receiver: the alert arrives there
    and nothing (not even a start-up notice) is posted to Slack."""
    am, webhook = alertmanager
    topic = readings_topic(1)
    alerter = start_alerter(ALERTMANAGER_URL=am.url, SLACK_WEBHOOK_URL="")
    alerter.wait_ready()
    produce(kafka_bootstrap, topic, [reading("gpu-only-am", 201.5, time.time())])
    webhook.wait_for("firing", device_id="gpu-only-am")
    assert alerter.stop() == 0
    assert slack.answers == []
