"""The service loop on fakes with the early-warning settings: kinds handed over and recorded, read back on
assignment, silence from the sweep, backlogs folded, state bounded."""

from __future__ import annotations

import json
import logging

import msgspec
import pytest

from alerter.adapters.alerts_log import RESOLVES_HEADER, encode_record, kind_of
from alerter.domain.notification import Backlog, Kind, Resolution
from shared.codec import encode
from tests.alerter_fakes import ALERTS, Rig, observing_rig, rig
from tests.alerter_support import make_alert, reading

EARLY = {
    "WARNING_THRESHOLD": "120",
    "RESOLVE_AFTER": "1m",
    "SILENCE_AFTER": "2m",
    "ALERT_COOLDOWN": "5m",
    "MAX_CLOCK_SKEW": "10s",
}


def send(r: Rig, device: str, temperature: float, after: float = 0.0, partition: int = 0) -> int:
    return r.source.add(partition, reading(device, temperature, r.clock() + after))


def deliver_all(r: Rig) -> None:
    r.notifier.complete_all()
    r.tick(0.01)
    r.tick(0.01)


@pytest.fixture
def early() -> Rig:
    started = rig(**EARLY)
    started.source.assign([0])
    return started


def test_a_warning_then_a_critical_are_handed_over_and_recorded_with_their_kind(early: Rig) -> None:
    """130 °C warns, 160 °C a second later is critical at once; both records on the alerts topic carry `kind`."""
    send(early, "gpu-1", 130.0)
    send(early, "gpu-1", 160.0, after=1)
    early.tick()
    assert [(n.kind, n.alert.temperature_threshold) for n in early.notifier.handed] == [
        (Kind.WARNING, 120.0),
        (Kind.CRITICAL, 150.0),
    ]
    deliver_all(early)
    kinds = [json.loads(record.value() or b"{}")["kind"] for record in early.producer.records(ALERTS)]
    assert kinds == ["warning", "critical"]
    assert early.metric("gpu_alerter_notifications_raised_total", kind="warning") == 1


def test_a_recorded_alert_is_the_alert_event_and_its_kind_and_reads_back_without_it_as_critical() -> None:
    """The record keeps the AlertEvent's shape with `kind` last; a record without `kind` (an older alerter) is
    read back as critical, so its cooldown still holds."""
    alert = make_alert()
    record = json.loads(encode_record(alert, Kind.WARNING))
    assert list(record) == [*json.loads(encode(alert)), "kind"]
    assert record["kind"] == "warning"

    r = rig(**EARLY)
    r.producer.produce(ALERTS, encode(make_alert(device_id="gpu-old")), b"gpu-old", partition=0)
    r.producer.produce(ALERTS, encode_record(make_alert(device_id="gpu-w"), Kind.WARNING), b"gpu-w", partition=0)
    r.producer.poll(0)
    r.source.assign([0])
    send(r, "gpu-old", 170.0, after=10)
    send(r, "gpu-w", 130.0, after=10)
    send(r, "gpu-w", 170.0, after=11)
    r.tick()
    assert [(n.kind, n.alert.device_id) for n in r.notifier.handed] == [(Kind.CRITICAL, "gpu-w")]
    assert r.metric("gpu_alerter_cooldowns_restored_total") == 2


def test_a_resolved_notice_is_recorded_with_what_it_ends(early: Rig) -> None:
    """A critical alert, then a minute below 115 °C: one resolved notice, recorded with a `resolves` header."""
    send(early, "gpu-1", 160.0)
    for t in range(5, 70, 5):
        send(early, "gpu-1", 60.0, after=t)
    early.tick()
    deliver_all(early)
    kinds = [n.kind for n in early.notifier.handed]
    assert kinds == [Kind.CRITICAL, Kind.RESOLVED]
    resolved = early.notifier.handed[1]
    assert isinstance(resolved.detail, Resolution)
    assert resolved.detail.since == early.notifier.handed[0].at + 5
    record = early.producer.records(ALERTS)[-1]
    assert dict(record.headers() or [])[RESOLVES_HEADER] == b"critical,warning,forecast"


def test_silence_comes_from_the_sweep_once_the_partition_is_read_to_its_end(early: Rig) -> None:
    """A device that stops reporting while nothing else arrives: once its partition is caught up and the wall
    clock (less the skew) is 2 min past its last reading, a silent alert holding that reading's offset."""
    last = send(early, "gpu-7", 70.0)
    early.tick()
    early.tick(60)
    assert early.notifier.handed == []
    early.tick(75)
    [silent] = early.notifier.handed
    assert (silent.kind, silent.alert.device_id, silent.offset) == (Kind.SILENT, "gpu-7", last)
    deliver_all(early)
    send(early, "gpu-7", 71.0, after=1)
    early.tick()
    back = early.notifier.handed[-1]
    assert back.kind is Kind.RESOLVED
    assert isinstance(back.detail, Resolution)
    assert back.detail.ends == (Kind.SILENT,)


def test_a_silence_that_lasts_is_seen_again_at_each_scan_until_the_device_reports() -> None:
    """Receivers that keep alerts alive (Alertmanager) hear, at each scan, that a silent alert still holds: on
    the device's last reading, at the partition's clock. Once the device reports again, no more."""
    r = observing_rig(**EARLY)
    r.source.assign([0])
    send(r, "gpu-7", 70.0)
    r.tick()
    r.tick(135)
    [silent] = r.notifier.handed
    assert silent.kind is Kind.SILENT
    deliver_all(r)
    r.notifier.sightings.clear()
    for _ in range(3):
        r.tick(30)
    seen = r.notifier.sightings
    assert len(seen) >= 2
    assert {(s.kind, s.alert.device_id, s.alert.temperature) for s in seen} == {(Kind.SILENT, "gpu-7", 70.0)}
    assert [s.at for s in seen] == sorted(s.at for s in seen)
    send(r, "gpu-7", 71.0, after=1)
    r.tick()
    assert r.notifier.handed[-1].kind is Kind.RESOLVED
    r.notifier.sightings.clear()
    for _ in range(3):
        r.tick(30)
    assert [s for s in r.notifier.sightings if s.kind is Kind.SILENT] == []


def test_an_hour_old_backlog_is_one_alert_per_device(caplog: pytest.LogCaptureFixture) -> None:
    """Readings an hour old, hot all along, read at once: one alert per device, raised once the partition has
    stayed read to its end for 5 s, saying how long and how hot (the log line too); no alert per cooldown."""
    r = rig()
    r.source.assign([0])
    for t in range(0, 3000, 30):
        for device in ("gpu-1", "gpu-2"):
            send(r, device, 160.0 + (t % 300) / 10, after=t - 3600)
    with caplog.at_level(logging.WARNING, logger="alerter.intake"):
        r.tick()
        assert r.notifier.handed == [], "read to its end only a moment: more of the backlog may come"
        for _ in range(4):
            r.tick(2)
    assert [(n.kind, n.alert.device_id) for n in r.notifier.handed] == [
        (Kind.CRITICAL, "gpu-1"),
        (Kind.CRITICAL, "gpu-2"),
    ]
    detail = r.notifier.handed[0].detail
    assert isinstance(detail, Backlog)
    assert (detail.count, detail.peak, detail.last - detail.first) == (100, 187.0, 2970.0)
    assert r.metric("gpu_alerter_alerts_suppressed_total", reason="folded") == 200
    assert "HIGH TEMPERATURE WHILE BEHIND: Device gpu-1 ran above 150.00°C from" in caplog.text


def test_over_max_tracked_devices_the_oldest_are_forgotten_counted_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    """1,200 hot devices through a 1,000-device bound: every one alerts (a device with an alert in flight is never
    forgotten); once delivered, the oldest go (counted, one warning line) and the newest are kept."""
    r = rig(MAX_TRACKED_DEVICES="1000", MAX_PENDING_ALERTS="5000")
    r.source.assign([0])
    for d in range(1200):
        send(r, f"gpu-{d:04d}", 160.0, after=d * 0.001)
    r.tick()
    assert len(r.notifier.handed) == 1200
    assert r.metric("gpu_alerter_devices_tracked") == 1200
    with caplog.at_level(logging.WARNING, logger="alerter.intake"):
        deliver_all(r)
        r.tick(1.0)  # the next sweep
        r.tick(1.0)
    assert r.metric("gpu_alerter_devices_tracked") == 900
    assert "gpu-1199" in r.service._partitions.owned[0].devices
    assert r.metric("gpu_alerter_devices_evicted_total", reason="limit") > 0
    assert caplog.text.count("tracking more than MAX_TRACKED_DEVICES=1000 devices") == 1


def test_expired_state_is_counted() -> None:
    """A device whose alert is long past its cooldown is forgotten at a scan, and counted as expired."""
    r = rig()
    r.source.assign([0])
    send(r, "gpu-1", 160.0)
    r.tick()
    deliver_all(r)
    r.clock.advance(3600)
    send(r, "gpu-2", 160.0)
    r.tick(31)
    assert "gpu-1" not in r.service._partitions.owned[0].devices
    assert r.metric("gpu_alerter_devices_evicted_total", reason="expired") == 1


def test_the_kind_decoder_tolerates_what_the_topic_may_hold() -> None:
    """A kind the alerter does not know reads as critical (the safe side for a cooldown)."""
    assert kind_of(msgspec.json.encode({"kind": "bogus"}), None) == (Kind.CRITICAL, ())
    assert kind_of(b"not json", None) == (Kind.CRITICAL, ())
    assert kind_of(b'{"kind":"resolved"}', b"silent,nonsense") == (Kind.RESOLVED, (Kind.SILENT,))
