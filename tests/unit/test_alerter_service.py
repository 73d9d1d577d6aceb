"""The service loop on in-memory fakes (tests/alerter_fakes.py): what it hands over, writes down and commits."""

from __future__ import annotations

import pytest
from confluent_kafka import KafkaError, KafkaException

from alerter.adapters.alerts_log import SOURCE_PARTITION_HEADER
from alerter.adapters.dead_letters import KIND, REASON, REASON_CODE
from alerter.adapters.rekeyed import REKEYED_FROM, REKEYED_KEY
from alerter.domain.notification import Kind, Status
from alerter.service import NotifierStopped
from shared.codec import decode_alert, encode
from tests.alerter_fakes import ALERTS, DLQ, READINGS, Rig, rig
from tests.alerter_support import make_alert, reading


def hot(r: Rig, device: str, temperature: float = 180.0, partition: int = 0, after: float = 0.0) -> int:
    return r.source.add(partition, reading(device, temperature, r.clock() + after))


def cool(r: Rig, device: str, partition: int = 0, after: float = 0.0) -> int:
    return r.source.add(partition, reading(device, 60.0, r.clock() + after))


@pytest.fixture
def r() -> Rig:
    started = rig()
    started.source.assign([0, 1])
    return started


def test_a_hot_reading_is_handed_over_and_committed_only_once_delivered_and_recorded(r: Rig) -> None:
    """The record of an alert holds the commit until the receiver accepted it AND the alerts topic acknowledged
    its record; the records before it are committed meanwhile."""
    cool(r, "gpu-1")
    held = hot(r, "gpu-2")
    cool(r, "gpu-3")
    r.tick()
    [notification] = r.notifier.handed
    assert (notification.kind, notification.alert.device_id, notification.offset) == (Kind.ALERT, "gpu-2", held)
    assert r.source.commits == {0: held}

    r.producer.hold = True  # the broker has not acknowledged the alert's record yet
    r.notifier.complete(notification)
    r.tick()
    assert r.source.commits == {0: held}, "delivered but not yet written down"
    r.producer.hold = False
    r.tick()
    r.tick()
    assert r.source.commits == {0: 3}
    [record] = r.producer.records(ALERTS)
    assert decode_alert(record.value()) == notification.alert
    assert record.key() == b"gpu-2"
    assert dict(record.headers() or [])[SOURCE_PARTITION_HEADER] == b"0"
    assert r.metric("gpu_alerter_alerts_raised_total") == 1
    assert r.metric("gpu_alerter_pending_alerts") == 0


def test_cooldown_covers_later_hot_readings_in_flight_and_delivered(r: Rig) -> None:
    """A device's later hot readings raise nothing while its alert is in flight, nor within the cooldown after
    delivery; a hot reading a cooldown later alerts again."""
    hot(r, "gpu-1")
    hot(r, "gpu-1", after=10)
    r.step()
    [first] = r.notifier.handed
    r.notifier.complete(first)
    hot(r, "gpu-1", after=20)
    hot(r, "gpu-1", after=301)
    r.step(2)
    assert [n.alert.timestamp.timestamp() - first.alert.timestamp.timestamp() for n in r.notifier.handed] == [0, 301]
    assert r.metric("gpu_alerter_alerts_suppressed_total", reason="in_flight") == 1
    assert r.metric("gpu_alerter_alerts_suppressed_total", reason="cooldown") == 1


def test_a_refused_alert_is_parked_and_keeps_its_cooldown(r: Rig) -> None:
    """A REJECTED result puts the alert on the dead-letter topic with its reason; once that copy is acknowledged
    the record is released. The device's cooldown starts as if delivered, so a revoked webhook is not asked again
    at its next hot readings, only a cooldown later."""
    hot(r, "gpu-1")
    r.step()
    r.notifier.complete(r.notifier.handed[0], Status.REJECTED, "slack rejected the alert: HTTP 404 refused")
    later = hot(r, "gpu-1", after=5)
    r.tick()
    r.tick()
    [parked] = r.producer.records(DLQ)
    headers = dict(parked.headers() or [])
    assert (headers[KIND], headers[REASON], headers[REASON_CODE]) == (
        b"alert",
        b"slack rejected the alert: HTTP 404 refused",
        b"slack_rejected",
    )
    assert decode_alert(parked.value()).device_id == "gpu-1"
    assert len(r.notifier.handed) == 1, "no second post within the cooldown of a refused alert"
    assert r.metric("gpu_alerter_alerts_suppressed_total", reason="cooldown") == 1
    assert r.source.commits[0] == later + 1
    assert r.producer.records(ALERTS) == [], "refused, so not recorded as delivered"
    hot(r, "gpu-1", after=301)
    r.tick()
    assert len(r.notifier.handed) == 2, "a cooldown later it is raised again"


def test_an_alert_one_receiver_refused_is_delivered_and_parked(r: Rig) -> None:
    """DELIVERED with a refusal's reason (another receiver refused it): recorded on the alerts topic and parked on
    the dead-letter topic, the record released once both writes are acknowledged."""
    offset = hot(r, "gpu-1")
    r.step()
    r.notifier.complete(r.notifier.handed[0], Status.DELIVERED, "alertmanager rejected the alert: HTTP 401")
    r.tick()
    r.tick()
    assert len(r.producer.records(ALERTS)) == 1
    [parked] = r.producer.records(DLQ)
    assert dict(parked.headers() or [])[REASON_CODE] == b"alertmanager_rejected"
    assert r.source.commits[0] == offset + 1


@pytest.mark.parametrize("status", [Status.FAILED, Status.ABANDONED])
def test_an_alert_not_delivered_keeps_its_record_uncommitted(r: Rig, status: Status) -> None:
    """A FAILED or ABANDONED alert leaves its record held: the commit stops there for good, so it is read again."""
    cool(r, "gpu-0")
    offset = hot(r, "gpu-1")
    cool(r, "gpu-2")
    r.step()
    r.notifier.complete(r.notifier.handed[0], status)
    r.tick()
    r.tick()
    assert r.source.commits == {0: offset}
    assert r.metric("gpu_alerter_pending_alerts") == 0


def test_unreadable_records_are_dead_lettered_and_committed_once_the_copy_is_acknowledged(r: Rig) -> None:
    """An unreadable record goes to the dead-letter topic byte for byte, counted by reason; its offset is passed
    only after the broker acknowledged the copy."""
    cool(r, "gpu-0")
    r.source.add(0, b"{not json")
    cool(r, "gpu-2")
    r.producer.hold = True
    r.tick()
    assert r.source.commits == {0: 1}
    r.producer.hold = False
    r.tick()
    r.tick()
    assert r.source.commits == {0: 3}
    [copy] = r.producer.records(DLQ)
    assert copy.value() == b"{not json"
    assert dict(copy.headers() or [])[REASON_CODE] == b"malformed_json"
    assert r.metric("gpu_alerter_dead_lettered_total", reason="malformed_json") == 1
    assert r.metric("gpu_alerter_readings_consumed_total") == 3


def test_a_dead_letter_copy_that_fails_keeps_the_record_held(r: Rig) -> None:
    """When the broker refuses the dead-letter copy for good, the record stays uncommitted (read again later)."""
    r.source.add(0, b"{not json")
    cool(r, "gpu-1")
    r.producer.refuse = KafkaError(KafkaError.MSG_SIZE_TOO_LARGE)
    r.tick()
    r.tick()
    assert r.source.commits.get(0) in (None, 0)


def test_consumption_pauses_at_max_pending_alerts_and_resumes_at_half() -> None:
    """With MAX_PENDING_ALERTS=4, four undelivered alerts pause reading; two deliveries resume it."""
    r = rig(MAX_PENDING_ALERTS="4")
    r.source.assign([0])
    for d in range(4):
        hot(r, f"gpu-{d}")
    r.step()
    assert r.source.paused
    assert r.metric("gpu_alerter_consumption_paused") == 1
    r.notifier.complete(r.notifier.handed[0])
    r.step()
    assert r.source.paused, "3 pending is more than half of 4"
    r.notifier.complete(r.notifier.handed[1])
    r.step()
    assert not r.source.paused
    assert r.metric("gpu_alerter_consumption_paused") == 0


def test_a_revoked_partition_waits_for_the_alert_being_posted_before_it_is_committed(r: Rig) -> None:
    """On revoke, an alert whose post is under way is waited for: delivered, it is recorded on the alerts topic
    and the commit passes it, so the new owner neither re-reads it nor misses its cooldown."""
    offset = hot(r, "gpu-1")
    r.step()
    [notification] = r.notifier.handed
    r.notifier.posting = notification.id
    grace_over = r.clock() + 5.5

    def post_ends_after_the_grace_period() -> None:
        if r.clock() > grace_over and r.notifier.posting is not None:
            r.notifier.posting = None
            r.notifier.complete(notification)

    r.producer.while_polling = post_ends_after_the_grace_period
    r.source.revoke([0])
    assert notification.id in r.notifier.cancelled
    assert r.source.commits[0] == offset + 1
    assert len(r.producer.records(ALERTS)) == 1


def test_a_revoked_partition_gives_its_undelivered_alerts_to_the_next_owner(r: Rig) -> None:
    """Alerts still undelivered after the grace period (none being posted) are taken back from the notifier,
    counted as revoked, and their records left uncommitted for the next owner."""
    cool(r, "gpu-0")
    offset = hot(r, "gpu-1")
    r.step()
    r.source.revoke([0])
    assert r.notifier.cancelled == {r.notifier.handed[0].id}
    assert r.source.commits[0] == offset
    assert r.metric("gpu_alerter_alerts_failed_total", reason="revoked") == 1
    assert r.metric("gpu_alerter_partitions_assigned") == 1


def test_a_delivery_after_the_partition_moved_is_still_recorded_and_remembered(r: Rig) -> None:
    """A result for a partition given away in the meantime (a lost one) still writes the cooldown down, and if
    the partition comes back, its device is in cooldown even before the alerts topic is read."""
    hot(r, "gpu-1")
    r.step()
    r.source.lose([0])
    r.notifier.complete(r.notifier.handed[0])
    r.tick()
    assert len(r.producer.records(ALERTS)) == 1
    r.producer.log.clear()  # the alerts topic cannot tell (as if it could not be read back in time)
    r.source.commits[0] = 1
    r.source.assign([0])
    hot(r, "gpu-1", after=30)
    r.tick()
    assert len(r.notifier.handed) == 1
    assert r.metric("gpu_alerter_alerts_suppressed_total", reason="cooldown") == 1


def test_a_new_owner_restores_cooldowns_from_the_alerts_topic(r: Rig) -> None:
    """Alerts delivered by the previous owner are read back on assignment: the re-read hot readings of those
    devices stay silent."""
    hot(r, "gpu-1")
    r.step()
    r.notifier.complete(r.notifier.handed[0])
    r.tick()
    r.tick()
    previous_commit = r.source.commits[0]
    r.source.lose([0])  # as if it crashed: the new owner reads from the last commit
    fresh = rig()
    fresh.producer.log = r.producer.log
    fresh.source.records = r.source.records
    fresh.source.commits = {0: previous_commit - 1}  # one record before: the alert's reading is read again
    fresh.source.assign([0])
    fresh.tick()
    assert fresh.notifier.handed == []
    assert fresh.metric("gpu_alerter_cooldowns_restored_total") == 1


def test_shutdown_waits_then_counts_undelivered_alerts_and_commits_what_is_safe(r: Rig) -> None:
    """At shutdown undelivered alerts get SHUTDOWN_TIMEOUT, then are counted as failed (shutdown) and their
    records left uncommitted; what came before is committed and the source is closed."""
    cool(r, "gpu-0")
    offset = hot(r, "gpu-1")
    r.step()
    r.service.shutdown()
    assert r.source.commits[0] == offset
    assert r.metric("gpu_alerter_alerts_failed_total", reason="shutdown") == 1
    assert r.source.closed
    assert not r.notifier.running


def test_a_dead_notifier_stops_the_loop(r: Rig) -> None:
    """When the notifier thread has died, the next commit turn raises NotifierStopped naming the pending count."""
    hot(r, "gpu-1")
    r.step()
    r.notifier.died = True
    assert not r.service.ready()
    with pytest.raises(NotifierStopped, match="with 1 alerts undelivered"):
        r.tick()


def test_a_fatal_client_error_stops_the_loop(r: Rig) -> None:
    """A fatal error reported by a client ends the loop at the next commit turn with that error."""
    r.watch.error(KafkaError(KafkaError._FENCED, "fenced by another member", fatal=True))
    with pytest.raises(KafkaException, match="fenced"):
        r.tick()


def test_an_outage_makes_it_unready_until_records_flow_again(r: Rig) -> None:
    """All brokers down makes /readyz false; the next records read make it true again."""
    assert r.service.ready()
    r.watch.error(KafkaError(KafkaError._ALL_BROKERS_DOWN, "all down"))
    assert not r.service.ready()
    cool(r, "gpu-1")
    r.step()
    assert r.service.ready()


def test_a_record_timestamp_of_minus_one_does_not_lift_the_clamp(r: Rig) -> None:
    """Readings stamped an hour apart by the device but with record timestamp -1 are judged around their arrival,
    so the device clock cannot make one device alert five times in a second."""
    for hours in range(5):
        r.source.add(0, reading("gpu-1", 180.0, r.clock() + hours * 3600), record_time=-0.001)
    r.tick()
    assert len(r.notifier.handed) == 1
    assert r.metric("gpu_alerter_alerts_suppressed_total", reason="in_flight") == 4


def test_readings_stepping_back_a_day_each_cost_one_restore_per_minute(r: Rig) -> None:
    """Hot readings whose timestamps step back a day at a time ask for older cooldowns: one restore of the partition
    is made, the rest within the minute are judged on what is known; a minute later the next restore reaches at
    least twice as far back as what was covered."""
    day = 24 * 3600.0
    for days in range(1, 11):
        at = r.clock() - days * day
        r.source.add(0, reading(f"gpu-{days}", 180.0, at), record_time=at)
    restores_before = len(r.producer.restores)
    r.tick()
    assert len(r.producer.restores) == restores_before + 1
    assert r.metric("gpu_alerter_restores_total", trigger="older_reading") == 1
    assert r.metric("gpu_alerter_restores_deferred_total") == 9
    assert r.metric("gpu_alerter_alerts_suppressed_total", reason="folded") == 10, "each is still judged"
    for _ in range(4):  # days old, they are a backlog: one alert each, once the partition stayed read to its end
        r.tick(2)
    assert len(r.notifier.handed) == 10

    covered = r.clock() - r.producer.restores[-1]
    r.clock.advance(61)
    at = r.clock() - 10.5 * day
    r.source.add(0, reading("gpu-11", 180.0, at), record_time=at)
    r.tick()
    assert r.metric("gpu_alerter_restores_total", trigger="older_reading") == 2
    assert r.clock() - r.producer.restores[-1] >= 2 * covered


def test_unreadable_alerts_topic_records_are_dead_lettered_once_and_the_restore_goes_on() -> None:
    """Records on the alerts topic that cannot be read are copied to the dead-letter topic with their reason and
    counted, once per process however often restores read them again; the valid alerts around them are restored."""
    r = rig()
    junk = [b"{not json", b"", b'{"device_id":"gpu-9"}', b"\xff\xfe"]
    for value in junk:
        r.producer.produce(ALERTS, value=value, key=b"gpu-9", partition=0)
    alert = make_alert(device_id="gpu-1", timestamp=reading("gpu-1", 0, r.clock() - 10).timestamp)
    r.producer.produce(ALERTS, value=encode(alert), key=b"gpu-1", partition=0, timestamp=round((r.clock() - 10) * 1000))
    r.producer.poll(0)
    r.source.assign([0])
    r.source.revoke([0])
    r.source.assign([0])
    r.tick()
    copies = r.producer.records(DLQ)
    assert [c.value() for c in copies] == junk
    assert {dict(c.headers() or [])[REASON_CODE] for c in copies} == {b"malformed_json", b"empty", b"invalid_field"}
    assert all(dict(c.headers() or [])[b"dlq-source-topic".decode()] == ALERTS.encode() for c in copies)
    assert r.metric("gpu_alerter_dead_lettered_total", reason="malformed_json") == 2
    assert r.metric("gpu_alerter_cooldowns_restored_total") == 2  # the valid alert, read back by both restores
    hot(r, "gpu-1")
    r.tick()
    assert r.notifier.handed == [], "its cooldown was restored past the unreadable records"


def test_a_hot_reading_keyed_otherwise_is_produced_again_keyed_by_its_device(r: Rig) -> None:
    """A hot reading whose key is not its device_id is not judged where it landed: it is produced again, byte for
    byte with its timestamp, keyed by its device_id, and its record is committed once that copy is acknowledged;
    judged on the device's partition, the device gets one alert per cooldown."""
    r.source.add(1, reading("gpu-1", 180.0, r.clock()))
    misplaced = reading("gpu-1", 181.0, r.clock() + 1)
    stamp = round(misplaced.timestamp.timestamp() * 1000)
    offset = r.source.add(0, misplaced, key=b"gpu-7")
    r.source.add(0, reading("gpu-2", 182.0, r.clock() + 2), key=None)
    r.producer.hold = True
    r.tick()
    assert [n.alert.device_id for n in r.notifier.handed] == ["gpu-1"]
    assert r.source.commits.get(0) in (None, offset), "held until the copies are acknowledged"
    r.producer.hold = False
    r.tick()
    r.tick()
    assert r.source.commits[0] == offset + 2
    copies = r.producer.records(READINGS)
    assert [(c.key(), c.value()) for c in copies] == [(b"gpu-1", encode(misplaced)), (b"gpu-2", copies[1].value())]
    assert copies[0].timestamp() == (1, stamp)
    headers = dict(copies[0].headers() or [])
    assert (headers[REKEYED_FROM], headers[REKEYED_KEY]) == (f"0/{offset}".encode(), b"gpu-7")
    assert REKEYED_KEY not in dict(copies[1].headers() or [])
    assert r.metric("gpu_alerter_readings_rekeyed_total") == 2

    r.source.add(1, reading("gpu-1", 181.0, r.clock()), key=copies[0].key())  # the copy, on gpu-1's partition
    r.tick()
    assert [n.alert.device_id for n in r.notifier.handed] == ["gpu-1"], "one alert per cooldown for gpu-1"
