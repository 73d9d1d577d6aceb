"""Two alerters in one group share the partitions; each hot device alerts once, also across a rebalance."""

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
    reading,
    send_sentinels,
    wait_for_sentinels,
)
from tests.support import wait_until

pytestmark = pytest.mark.integration
PARTITIONS = 4


def test_two_instances_split_partitions_and_alert_each_device_once(
    kafka_bootstrap: str,
    readings_topic: Callable[[int], str],
    slack: SlackStandIn,
    start_alerter: Callable[..., AlerterProcess],
) -> None:
    """Both instances own partitions and both deliver; twelve devices hot three times each alert once in all.
    When one instance leaves, the other takes its partitions with their cooldowns: no device alerts again."""
    topic = readings_topic(PARTITIONS)
    one, two = start_alerter(), start_alerter()

    def split() -> bool:
        owned = [a.metric("gpu_alerter_partitions_assigned") for a in (one, two)]
        return sum(owned) == PARTITIONS and min(owned) >= 1

    wait_until(split, 60, "both instances to own partitions")
    one.wait_ready()
    two.wait_ready()

    now = time.time()
    devices = [f"gpu-{d:02d}" for d in range(12)]
    produce(
        kafka_bootstrap,
        topic,
        [reading(d, 170.0 + k, now + k * 10 + i * 0.01) for k in range(3) for i, d in enumerate(devices)],
    )
    slack.wait_for(lambda got: alert_count(got) >= len(devices), 30)
    wait_for_sentinels(slack, send_sentinels(kafka_bootstrap, topic))  # a duplicate would have come before these
    got = alerts_by_device(slack.received)
    assert sorted(got) == devices
    assert all(len(alerts) == 1 for alerts in got.values()), "each device once across the group"

    def sent_by_each() -> list[float] | None:
        counts = [a.metric("gpu_alerter_alerts_sent_total") for a in (one, two)]
        return counts if sum(counts) == len(devices) + PARTITIONS else None  # and one sentinel per partition

    sent = wait_until(sent_by_each, 10, "every alert to count as sent")
    assert min(sent) >= 1, f"both instances delivered alerts: {sent}"

    assert two.stop() == 0
    wait_until(lambda: one.metric("gpu_alerter_partitions_assigned") == PARTITIONS, 30, "the survivor to own all")
    newcomers = [f"gpu-new-{d}" for d in range(4)]
    produce(kafka_bootstrap, topic, [reading(d, 200.0, now + 40 + i * 0.01) for i, d in enumerate(devices + newcomers)])
    slack.wait_for(lambda got: alert_count(got) >= len(devices) + len(newcomers), 30)
    wait_for_sentinels(slack, send_sentinels(kafka_bootstrap, topic))
    got = alerts_by_device(slack.received)
    assert sorted(got) == sorted(devices + newcomers)
    assert all(len(alerts) == 1 for alerts in got.values()), "no repeat within cooldown after the rebalance"
    assert one.metric("gpu_alerter_cooldowns_restored_total") >= sent[1], "the moved partitions' alerts were read back"
