"""Slack failing in every way it can: no alert is lost, none repeated, no cooldown spent on a failed send."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from alerter.adapters.dead_letters import KIND, REASON, REASON_CODE
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


def test_slack_500s_then_recovering_delivers_every_alert_once(
    kafka_bootstrap: str,
    readings_topic: Callable[[int], str],
    slack: SlackStandIn,
    start_alerter: Callable[..., AlerterProcess],
) -> None:
    """While Slack answers 500 the alerts wait (offsets held at them); once it recovers each device's first hot
    reading arrives exactly once, though later hot readings of the same devices came within the cooldown."""
    topic = readings_topic(2)
    alerter = start_alerter()
    alerter.wait_ready()
    slack.fail(500)
    now = time.time()
    normal = [reading(f"gpu-{d}", 60.0, now + d * 0.01) for d in range(4)]
    hot = [reading(f"gpu-{d}", 180.0 + 10 * k, now + 1 + k + d * 0.01) for k in range(3) for d in range(4)]
    placed = produce(kafka_bootstrap, topic, [*normal, *hot])
    first_hot: dict[int, int] = {}
    for partition, offset in placed[len(normal) :]:
        first_hot.setdefault(partition, offset)

    wait_until(lambda: slack.refused >= 8, 30, "retries against the failing webhook")
    assert alerter.metric("gpu_alerter_pending_alerts") == 4, "one undelivered alert per device, the rest covered"
    assert alerter.metric("gpu_alerter_alert_send_retries_total", reason="server_error") >= 4
    held = committed(kafka_bootstrap, alerter.env["CONSUMER_GROUP"], topic, 2)
    assert {p: held[p] for p in first_hot} == first_hot, "each partition's commit stops at its first undelivered alert"

    slack.recover()
    slack.wait_for(lambda got: alert_count(got) >= 4, 30)
    wait_for_sentinels(slack, send_sentinels(kafka_bootstrap, topic))  # a duplicate would have come before these
    got = alerts_by_device(slack.received)
    assert sorted(got) == [f"gpu-{d}" for d in range(4)]
    for device, alerts in got.items():
        assert [a["by_title"]["Temperature"] for a in alerts] == ["180.00°C"], f"{device}: first hot reading, once"
    wait_until(lambda: alerter.metric("gpu_alerter_alerts_sent_total") == 4 + 2, 10, "4 alerts and 2 sentinels sent")
    assert alerter.metric("gpu_alerter_alerts_failed_total", reason="rejected") == 0
    wait_until(
        lambda: (
            committed(kafka_bootstrap, alerter.env["CONSUMER_GROUP"], topic, 2)
            == end_offsets(kafka_bootstrap, topic, 2)
        ),
        10,
        "commits to reach the end once everything is delivered",
    )
    assert "Slack did not accept an alert (HTTP 500 internal_error)" in alerter.log
    assert "Slack accepts alerts again" in alerter.log
    assert WEBHOOK_PATH not in alerter.log


def test_429_retry_after_is_honoured(
    kafka_bootstrap: str,
    readings_topic: Callable[[int], str],
    slack: SlackStandIn,
    start_alerter: Callable[..., AlerterProcess],
) -> None:
    """A 429 with Retry-After: 2 makes the alerter wait two seconds before posting that alert again."""
    topic = readings_topic(1)
    alerter = start_alerter()
    alerter.wait_ready()
    slack.rate_limit(retry_after=2, count=1)
    produce(kafka_bootstrap, topic, [reading("gpu-7", 199.0, time.time())])
    slack.wait_for(lambda got: alert_count(got) >= 1, 30)
    answers = [a for a in slack.answers if a.status in (429, 200)][-2:]
    assert [a.status for a in answers] == [429, 200]
    assert answers[1].at - answers[0].at >= 1.95, "waited what Retry-After asked"
    assert alerter.metric("gpu_alerter_alert_send_retries_total", reason="rate_limited") == 1
    assert alert_count(slack.received) == 1


def test_refused_alerts_keep_their_cooldown_and_repeated_refusals_make_it_unready(
    kafka_bootstrap: str,
    readings_topic: Callable[[int], str],
    slack: SlackStandIn,
    start_alerter: Callable[..., AlerterProcess],
) -> None:
    """A 404 from Slack (a revoked webhook) is logged once as a configuration error (status and body, not the URL)
    and the alert parked on the dead-letter topic; the device's cooldown is kept, so 50 hot readings make one
    post, not 50. After three refusals in a row /readyz answers 503; the next accepted alert makes it ready again,
    and a cooldown later the refused device alerts again."""
    topic = readings_topic(1)
    alerter = start_alerter(ALERT_COOLDOWN="1m")
    alerter.wait_ready()
    slack.fail(404, count=3)
    now = time.time()
    produce(kafka_bootstrap, topic, [reading("gpu-1", 190.0 + n / 10, now + n) for n in range(50)])
    produce(kafka_bootstrap, topic, [reading(f"gpu-{d}", 190.0, now + 50) for d in (2, 3)])
    dead = read_all(kafka_bootstrap, alerter.env["DLQ_TOPIC"], 3)
    assert len(dead) == 3
    headers = dict(dead[0].headers() or [])
    assert headers[KIND] == b"alert"
    assert headers[REASON] == b"slack rejected the alert: HTTP 404 refused"
    assert headers[REASON_CODE] == b"slack_rejected"
    assert decode_alert(dead[0].value()).temperature == 190.0
    wait_until(lambda: alerter.get("/readyz").status_code == 503, 30, "/readyz to report not ready")
    assert alerter.metric("gpu_alerter_receiver_refusing", receiver="slack") == 1

    produce(kafka_bootstrap, topic, [reading("gpu-4", 195.0, now + 51)])
    slack.wait_for(lambda got: "gpu-4" in alerts_by_device(got), 30)
    wait_until(lambda: alerter.get("/readyz").status_code == 200, 30, "/readyz to report ready again")
    refused = [a for a in slack.answers if a.status == 404]
    assert len(refused) == 3, "one post per device, not one per hot reading"
    assert alerter.metric("gpu_alerter_alerts_failed_total", reason="rejected") == 3
    suppressed = [alerter.metric("gpu_alerter_alerts_suppressed_total", reason=r) for r in ("cooldown", "in_flight")]
    assert sum(suppressed) == 49
    assert alerter.log.count("Slack refused the alert (HTTP 404 refused): check SLACK_WEBHOOK_URL") == 1
    assert "Slack refused 3 alerts in a row: not ready until it accepts one again" in alerter.log
    assert WEBHOOK_PATH not in alerter.log

    produce(kafka_bootstrap, topic, [reading("gpu-1", 197.0, now + 50 + 61)])
    slack.wait_for(lambda got: "gpu-1" in alerts_by_device(got), 30)
    assert [a["by_title"]["Temperature"] for a in alerts_by_device(slack.received)["gpu-1"]] == ["197.00°C"]


def test_long_outage_pauses_consumption_at_the_bound_and_resumes(
    kafka_bootstrap: str,
    readings_topic: Callable[[int], str],
    slack: SlackStandIn,
    start_alerter: Callable[..., AlerterProcess],
) -> None:
    """With MAX_PENDING_ALERTS=3 and Slack down, consumption pauses (readings wait in Kafka) and resumes when
    Slack is back; every alert still arrives."""
    topic = readings_topic(1)
    alerter = start_alerter(MAX_PENDING_ALERTS="3")
    alerter.wait_ready()
    slack.fail(503)
    now = time.time()
    produce(kafka_bootstrap, topic, [reading(f"gpu-{d}", 170.0, now + d * 0.01) for d in range(6)])
    wait_until(lambda: alerter.metric("gpu_alerter_consumption_paused") == 1, 30, "consumption to pause")
    consumed = alerter.metric("gpu_alerter_readings_consumed_total")
    produce(kafka_bootstrap, topic, [reading(f"gpu-{d}", 50.0, now + 1 + d) for d in range(20)])
    time.sleep(1.5)
    assert alerter.metric("gpu_alerter_readings_consumed_total") == consumed, "nothing is read while paused"
    assert "pausing consumption" in alerter.log

    slack.recover()
    slack.wait_for(lambda got: alert_count(got) >= 6, 30)
    wait_until(lambda: alerter.metric("gpu_alerter_consumption_paused") == 0, 10, "consumption to resume")
    wait_until(lambda: alerter.metric("gpu_alerter_readings_consumed_total") == 26, 10, "the waiting readings")
    assert sorted(alerts_by_device(slack.received)) == [f"gpu-{d}" for d in range(6)]
    assert alert_count(slack.received) == 6


def test_stopping_while_slack_is_down_leaves_the_alerts_to_the_next_run(
    kafka_bootstrap: str,
    readings_topic: Callable[[int], str],
    slack: SlackStandIn,
    start_alerter: Callable[..., AlerterProcess],
) -> None:
    """SIGTERM while alerts cannot be delivered: a clean exit that commits nothing past them, so the next
    instance raises them once Slack is back."""
    topic = readings_topic(1)
    first = start_alerter()
    first.wait_ready()
    slack.fail(500)
    now = time.time()
    placed = produce(
        kafka_bootstrap,
        topic,
        [reading("gpu-0", 60.0, now), reading("gpu-1", 171.0, now + 1), reading("gpu-2", 172.0, now + 2)],
    )
    wait_until(lambda: first.metric("gpu_alerter_pending_alerts") == 2, 30, "two alerts in flight")
    assert first.stop() == 0
    assert "2 alerts were not delivered before shutdown" in first.log
    assert committed(kafka_bootstrap, first.env["CONSUMER_GROUP"], topic, 1) == [placed[1][1]]

    slack.recover()
    start_alerter()
    slack.wait_for(lambda got: alert_count(got) >= 2, 30)
    wait_for_sentinels(slack, send_sentinels(kafka_bootstrap, topic))
    assert sorted(alerts_by_device(slack.received)) == ["gpu-1", "gpu-2"]
    assert alert_count(slack.received) == 2
