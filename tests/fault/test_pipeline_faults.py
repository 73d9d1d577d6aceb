"""Both services, running for real, through broker failures injected by pid (issue: resilience).

Each test runs the real entry points (`python -m publisher`, `python -m alerter`)
against a private cluster, breaks it (SIGKILL, SIGSTOP), and then checks the
two promises: every reading the publisher reports delivered is on the topic
exactly once and in per-device order, and every device that ran hot got
exactly one alert (the cooldown is longer than the test).
"""

from __future__ import annotations

import json
import re
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from shared.codec import decode_alert
from slack_stand_in import SlackStandIn
from tests.alerter_support import (
    AlerterProcess,
    alert_env,
    alerts_by_device,
    read_all,
    send_sentinels,
    wait_for_sentinels,
)
from tests.integration.test_publisher import Publisher, Record, env_for, read_topic, scrape
from tests.support import PrivateCluster, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.fault]

THRESHOLD = 130.0
DEVICES = 500
INTERVAL_MS = 100  # 500 devices every 100 ms: 5,000 readings/s


@pytest.fixture
def slack() -> Iterator[SlackStandIn]:
    with SlackStandIn() as server:
        yield server


def start_publisher(cluster: PrivateCluster, tmp_path: Path, unique: str, **extra: str) -> Publisher:
    env = env_for(
        cluster.bootstrap,
        f"readings-{unique}",
        NUM_DEVICES=str(DEVICES),
        INTERVAL_MS=str(INTERVAL_MS),
        ABNORMAL_PROBABILITY="0.02",
        SIMULATOR_SEED="11",
        TOPIC_PARTITIONS="4",
        TOPIC_REPLICATION_FACTOR="2",
        STARTUP_ATTEMPTS="30",
        STARTUP_BACKOFF_MAX="1s",
        FLUSH_TIMEOUT="60s",
        **extra,
    )
    return Publisher(tmp_path, env)


def start_alerter(
    cluster: PrivateCluster, tmp_path: Path, unique: str, slack: SlackStandIn, **extra: str
) -> AlerterProcess:
    """`python -m alerter` number n of this test, posting to its own webhook path `/alerter-n` (who sent what)."""
    number = len(list(tmp_path.glob("alerter-*")))
    env = alert_env(
        cluster.bootstrap,
        unique,
        slack.webhook_url(f"alerter-{number}"),
        TEMPERATURE_THRESHOLD=str(THRESHOLD),
        ALERT_COOLDOWN="30m",
        ALERT_BUDGET_PER_MINUTE="100000",  # every device's own alert is checked here, not the flood summary
        LOG_FORMAT="json",
        STARTUP_ATTEMPTS="30",
        STARTUP_BACKOFF_MAX="1s",
        **extra,
    )
    return AlerterProcess(env, tmp_path / f"alerter-{number}.log")


def delivered_so_far(publisher: Publisher) -> float:
    try:
        return scrape(publisher.metrics_port()).get(("gpu_publisher_readings_delivered_total", ()), 0.0)
    except OSError:
        return 0.0


def wait_delivered(publisher: Publisher, count: float, timeout: float, what: str) -> None:
    """Until the publisher reports `count` readings delivered; fails at once, with its log, if it exited."""

    def check() -> bool:
        code = publisher.process.poll()
        assert code is None, f"the publisher exited {code} before {what}"
        return delivered_so_far(publisher) >= count

    try:
        wait_until(check, timeout, what)
    except AssertionError as failure:
        raise AssertionError(f"{failure}\npublisher log: {publisher.text()[-3000:]}") from None


def stop_publisher(publisher: Publisher) -> int:
    """SIGTERM; the publisher must flush everything and exit 0; returns how many readings it delivered."""
    publisher.process.send_signal(signal.SIGTERM)
    code = publisher.wait(90)
    summary = publisher.summary()
    assert code == 0, publisher.text()[-3000:]
    assert summary["undelivered"] == 0
    assert summary["delivered"] == summary["produced"]
    return int(summary["delivered"])


def check_topic(cluster: PrivateCluster, topic: str, delivered: int) -> list[Record]:
    """Exactly the delivered readings, none twice, each device's in increasing time order."""
    records = read_topic(cluster.bootstrap, topic)
    assert len(records) == delivered
    seen = {(r.key, r.reading.timestamp) for r in records}
    assert len(seen) == len(records), "a reading was written twice"
    last: dict[bytes, object] = {}
    for record in records:  # partition/offset order; a device always lands on one partition
        stamp = record.reading.timestamp
        assert record.key not in last or last[record.key] < stamp, f"device {record.key!r} out of order"  # type: ignore[operator]
        last[record.key] = stamp
    return records


def check_alerts(
    cluster: PrivateCluster, slack: SlackStandIn, unique: str, records: list[Record], timeout: float = 90, *,
    killed: AlerterProcess | None = None,
) -> None:
    """Every device that ran hot got exactly one alert, for its FIRST hot reading (the 30-minute cooldown
    outlasts the test, so a lost first alert would show as a later reading's alert).

    The one exception is the window no alerter can close: `killed` was SIGKILLed after Slack accepted an
    alert and before the alert was recorded on the alerts topic, so the partition's next owner could not know
    and sent it again. A repeat passes only when it is exactly that: two copies of the first hot reading's
    alert, the first posted by `killed`, and one record of the device on the alerts topic (the second copy's).
    """
    first_hot: dict[str, float] = {}
    for record in records:  # per device, offset order is time order
        reading = record.reading
        if reading.temperature > THRESHOLD:
            first_hot.setdefault(reading.device_id, reading.temperature)
    hot = set(first_hot)
    assert hot, "the run produced hot readings"
    slack.wait_for(lambda messages: set(alerts_by_device(messages)) >= hot, timeout)
    wait_for_sentinels(slack, send_sentinels(cluster.bootstrap, f"readings-{unique}"), timeout)
    by_device = alerts_by_device(slack.received)
    assert set(by_device) == hot, f"alerts for devices that never ran hot: {set(by_device) - hot}"
    wrong = {
        device: [a["by_title"]["Temperature"] for a in alerts]
        for device, alerts in by_device.items()
        if {a["by_title"]["Temperature"] for a in alerts} != {f"{first_hot[device]:.2f}°C"}
    }
    assert not wrong, f"alerts not for the device's first hot reading (expected {first_hot}): {wrong}"
    repeated = {d: [a["path"] for a in alerts] for d, alerts in by_device.items() if len(alerts) > 1}
    if not repeated:
        return
    assert killed is not None, f"devices alerted more than once: {repeated}"
    killed_path = "/" + killed.env["SLACK_WEBHOOK_URL"].split("/", 3)[3]
    recorded: dict[str, int] = {}
    for message in read_all(cluster.bootstrap, killed.env["ALERT_TOPIC"], len(hot)):
        device = decode_alert(message.value()).device_id
        recorded[device] = recorded.get(device, 0) + 1
    unexplained = {
        device: (paths, recorded.get(device, 0))
        for device, paths in repeated.items()
        if len(paths) != 2 or paths[0] != killed_path or killed_path in paths[1:] or recorded.get(device) != 1
    }
    assert not unexplained, (
        f"devices alerted more than once, not explained by the SIGKILL of {killed_path} between Slack's "
        f"acceptance and the alerts topic (device: (webhook paths in order, records on the alerts topic)): "
        f"{unexplained}"
    )


def in_full_flow(publisher: Publisher, alerter: AlerterProcess) -> None:
    """The alerter owns its partitions and the publisher has delivered its first 10,000 readings."""
    alerter.wait_ready(60)
    wait_delivered(publisher, 10_000, 60, "the publisher to be in full flow")


def stop_and_check(
    cluster: PrivateCluster,
    publisher: Publisher,
    slack: SlackStandIn,
    unique: str,
    *,
    alert_timeout: float = 90,
    killed: AlerterProcess | None = None,
) -> None:
    """Stop the publisher, then check the topic against what it delivered and the alerts against the topic."""
    records = check_topic(cluster, f"readings-{unique}", stop_publisher(publisher))
    check_alerts(cluster, slack, unique, records, alert_timeout, killed=killed)


def log_lines(text: str, pattern: str) -> list[str]:
    return [line for line in text.splitlines() if re.search(pattern, line)]


def assert_structured(name: str, text: str) -> None:
    """Every line a service printed is one JSON object (LOG_FORMAT=json): no raw librdkafka `%3|...` lines."""
    raw = [line for line in text.splitlines() if line.strip() and not line.startswith("{")]
    assert not raw, f"{name} printed {len(raw)} unstructured lines, e.g. {raw[:3]}"


def test_a_broker_killed_under_load_loses_and_duplicates_nothing(
    healthy_cluster: PrivateCluster, slack: SlackStandIn, tmp_path: Path, unique: str
) -> None:
    """SIGKILL of one broker at 5,000 readings/s: the publisher goes on without restart, every delivered reading is
    on the RF-2 topic once and in order, and the alerter keeps alerting through the failover."""
    publisher = start_publisher(healthy_cluster, tmp_path, unique)
    alerter = start_alerter(healthy_cluster, tmp_path, unique, slack)
    try:
        in_full_flow(publisher, alerter)
        killed_at = time.time()
        healthy_cluster.kill("broker-1")
        before = delivered_so_far(publisher)
        wait_delivered(publisher, before + 25_000, 60, "deliveries to go on without broker-1")
        assert publisher.process.poll() is None, "the publisher kept running"
        wait_until(
            lambda: any(m.at > killed_at + 1 for m in slack.received), 60, "an alert sent after the failover"
        )
        stop_and_check(healthy_cluster, publisher, slack, unique)
        assert alerter.process.poll() is None, "the alerter kept running"
        port = healthy_cluster.broker_port("broker-1")
        named = log_lines(publisher.text() + alerter.log, rf"127\.0\.0\.1:{port}")
        assert named, "the logs name the broker that failed"
        assert len(named) <= 40, f"broker failure logged {len(named)} times: not rate-limited"
    finally:
        publisher.kill()
        alerter.stop()


def test_whole_cluster_away_for_20s_buffers_then_delivers_everything(
    healthy_cluster: PrivateCluster, slack: SlackStandIn, tmp_path: Path, unique: str
) -> None:
    """All nodes SIGKILLed for 20 s: the publisher fills its bounded buffer, pauses the ticker (logged), and delivers
    everything once the cluster is back; the alerter reconnects alone and no alert is lost or repeated."""
    publisher = start_publisher(healthy_cluster, tmp_path, unique, MAX_BUFFERED_READINGS="20000")
    alerter = start_alerter(healthy_cluster, tmp_path, unique, slack)
    try:
        in_full_flow(publisher, alerter)
        healthy_cluster.stop_all()
        wait_until(lambda: "backpressure" in publisher.text(), 30, "the publisher to apply backpressure")
        time.sleep(20)
        assert publisher.process.poll() is None, publisher.text()[-2000:]
        assert alerter.process.poll() is None, alerter.log[-2000:]
        pauses = log_lines(publisher.text(), r'"event": ?"backpressure: ')
        assert len(pauses) == 1, "one backpressure line per incident, not per tick"

        healthy_cluster.up()
        before = delivered_so_far(publisher)
        wait_delivered(publisher, before + 30_000, 90, "deliveries after the cluster returned")
        stop_and_check(healthy_cluster, publisher, slack, unique)
    finally:
        publisher.kill()
        alerter.stop()


def test_a_hung_broker_neither_hangs_nor_crashes_the_services(
    healthy_cluster: PrivateCluster, slack: SlackStandIn, tmp_path: Path, unique: str
) -> None:
    """SIGSTOP of a broker for 15 s, then SIGCONT: both services keep running, log the incident a bounded number
    of times, and afterwards the publisher still delivers every reading and the alerter every alert."""
    publisher = start_publisher(healthy_cluster, tmp_path, unique)
    alerter = start_alerter(healthy_cluster, tmp_path, unique, slack)
    try:
        in_full_flow(publisher, alerter)
        healthy_cluster.signal("broker-2", signal.SIGSTOP)
        try:
            time.sleep(15)
            assert publisher.process.poll() is None
            assert alerter.process.poll() is None
        finally:
            healthy_cluster.signal("broker-2", signal.SIGCONT)
        before = delivered_so_far(publisher)
        wait_delivered(publisher, before + 25_000, 90, "deliveries after SIGCONT")
        stop_and_check(healthy_cluster, publisher, slack, unique)
        for name, text in (("publisher", publisher.text()), ("alerter", alerter.log)):
            assert_structured(name, text)
            warnings = [json.loads(line) for line in text.splitlines() if line.startswith("{")]
            noisy = [
                w for w in warnings
                if w.get("level") in ("warning", "error") and "HIGH TEMP" not in w.get("event", "")
            ]
            assert len(noisy) <= 40, f"{name} logged {len(noisy)} warnings for one incident"
    finally:
        publisher.kill()
        alerter.stop()


def test_services_started_before_the_cluster_wait_and_then_work(
    private_cluster: PrivateCluster, slack: SlackStandIn, tmp_path: Path, unique: str
) -> None:
    """Started while every node is down, both services retry with one log line per attempt, then work once the
    cluster comes up."""
    private_cluster.stop_all()
    publisher = start_publisher(private_cluster, tmp_path, unique)
    alerter = start_alerter(private_cluster, tmp_path, unique, slack)
    try:
        wait_until(
            lambda: len(log_lines(publisher.text(), r"not reachable \(attempt")) >= 2
            and len(log_lines(alerter.log, r"not reachable \(attempt")) >= 2,
            60,
            "both services to retry",
        )
        private_cluster.up()
        alerter.wait_ready(90)
        wait_delivered(publisher, 10_000, 90, "the publisher to deliver")
        stop_and_check(private_cluster, publisher, slack, unique)
        for name, text in (("publisher", publisher.text()), ("alerter", alerter.log)):
            assert_structured(name, text)
            attempts = log_lines(text, r"not reachable \(attempt")
            assert len(attempts) <= 30, f"{name}: {len(attempts)} attempt lines for STARTUP_ATTEMPTS=30"
    finally:
        publisher.kill()
        alerter.stop()


def test_alerter_restarted_during_a_rebalance_loses_and_repeats_nothing(
    healthy_cluster: PrivateCluster, slack: SlackStandIn, tmp_path: Path, unique: str
) -> None:
    """Two alerters in one group; a third joins and the first is SIGKILLed mid-rebalance, then restarted: every hot
    device is alerted exactly once across the group, save a repeat explained by the kill (see check_alerts)."""
    publisher = start_publisher(healthy_cluster, tmp_path, unique)
    first = start_alerter(healthy_cluster, tmp_path, unique, slack)
    second = start_alerter(healthy_cluster, tmp_path, unique, slack)
    alerters = [first, second]
    try:
        first.wait_ready(60)
        second.wait_ready(60)
        wait_until(lambda: len(slack.received) >= 5, 60, "alerts to flow")
        alerters.append(start_alerter(healthy_cluster, tmp_path, unique, slack))  # starts a rebalance
        time.sleep(0.5)
        first.kill()
        alerters.append(start_alerter(healthy_cluster, tmp_path, unique, slack))
        alerters[-1].wait_ready(90)
        wait_delivered(publisher, 40_000, 90, "more readings after the restart")
        stop_and_check(healthy_cluster, publisher, slack, unique, alert_timeout=120, killed=first)
    finally:
        publisher.kill()
        for alerter in alerters:
            alerter.stop()

