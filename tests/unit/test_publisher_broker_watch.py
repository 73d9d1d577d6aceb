"""Broker outages and recoveries become one log line each, from librdkafka statistics as it really reports them."""

from __future__ import annotations

import json
import logging

import pytest

from publisher.broker_watch import BrokerWatch

B1, B2 = "127.0.0.1:9092/1", "127.0.0.1:9093/2"


def report(**states: str) -> str:
    """A statistics report with the given brokers (name=state); names starting 'boot' are bootstrap entries."""
    brokers = {
        (f"{name}/bootstrap" if name.startswith("boot") else name): {
            "nodeid": -1 if name.startswith("boot") else int(name[-1]),
            "state": state,
        }
        for name, state in states.items()
    }
    return json.dumps({"name": "gpu-temp-publisher#producer-1", "brokers": brokers})


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def messages(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "publisher.broker_watch"]


def test_whole_cluster_outage_logs_each_broker_once_down_and_once_back(caplog: pytest.LogCaptureFixture) -> None:
    """Brokers that vanish (librdkafka falls back to bootstrap) are down once; their return says how long."""
    caplog.set_level(logging.INFO)
    clock = Clock()
    watch = BrokerWatch(clock)
    watch.update(report(**{B1: "UP", B2: "UP"}))
    for t in range(5, 30, 5):  # 25 s with only bootstrap entries, as observed during an outage
        clock.now = float(t)
        watch.update(report(boot1="INIT", boot2="INIT"))
    assert watch.down() == [B1, B2]
    clock.now = 30.0
    watch.update(report(**{B1: "UP", B2: "INIT"}))
    assert messages(caplog) == [
        f"Kafka broker {B1} is down (gone from the cluster metadata); readings wait in the buffer",
        f"Kafka broker {B2} is down (gone from the cluster metadata); readings wait in the buffer",
        f"Kafka broker {B1} is back after 25s (connected)",
        f"Kafka broker {B2} is back after 25s (idle: nothing to send to it yet)",
    ]
    assert watch.down() == []


def test_one_broker_failing_and_recovering(caplog: pytest.LogCaptureFixture) -> None:
    """A broker stuck connecting is reported once, however many reports repeat it, and once when it is up."""
    caplog.set_level(logging.INFO)
    clock = Clock()
    watch = BrokerWatch(clock)
    watch.update(report(**{B1: "UP", B2: "UP"}))
    for t, state in ((5, "CONNECT"), (10, "TRY_CONNECT"), (15, "DOWN"), (20, "CONNECT")):
        clock.now = float(t)
        watch.update(report(**{B1: "UP", B2: state}))
    clock.now = 25.0
    watch.update(report(**{B1: "UP", B2: "UP"}))
    assert messages(caplog) == [
        f"Kafka broker {B2} is down (state CONNECT); readings wait in the buffer",
        f"Kafka broker {B2} is back after 20s (connected)",
    ]


def test_idle_brokers_and_bad_reports_are_not_news(caplog: pytest.LogCaptureFixture) -> None:
    """A broker never connected to, or idle after being used, logs nothing; unreadable reports are ignored."""
    caplog.set_level(logging.INFO)
    watch = BrokerWatch(Clock())
    watch.update(report(**{B1: "UP", B2: "INIT"}))
    watch.update(report(**{B1: "INIT", B2: "INIT"}))
    watch.update("{not json")
    watch.update(json.dumps({"brokers": "nope"}))
    assert messages(caplog) == []
    assert watch.down() == []
