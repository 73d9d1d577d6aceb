"""The owned partitions as a pure aggregate: notifications raised, results settled, writes acknowledged, hand-overs."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from alerter.domain.notification import Kind, Notification, Recorded, Result, Status
from alerter.domain.partition import Partition, Partitions
from alerter.domain.policy import AlertPolicy, Verdict
from tests.alerter_support import reading

POLICY = AlertPolicy(threshold=150.0, cooldown=300.0, max_clock_skew=60.0)
T0 = 1_000_000.0


def judge(
    partitions: Partitions, partition: Partition, device: str, temperature: float, *at_offset: float
) -> tuple[Verdict, list[Notification]]:
    """A live reading (judged at its own time) at (offset, event time)."""
    offset, at = at_offset
    return partitions.judge(partition, reading(device, temperature, at), int(offset), at, at)


def raise_alert(partitions: Partitions, number: int, device: str, offset: int, at: float = T0) -> Notification:
    verdict, [notification] = judge(partitions, partitions.owned[number], device, 200.0, offset, at)
    assert verdict is Verdict.ALERT
    return notification


def test_an_alert_holds_its_record_until_delivered_and_written() -> None:
    """A raised alert holds its offset; delivery alone does not release it, the acknowledged write does."""
    partitions = Partitions(POLICY)
    partition = partitions.assign(0)
    notification = raise_alert(partitions, 0, "gpu-1", 4)
    partition.offsets.advance(10)
    assert (notification.kind, partitions.pending, partition.offsets.safe()) == (Kind.CRITICAL, 1, 4)
    assert partitions.settle(Result(notification, Status.DELIVERED)) is partition
    assert (partitions.pending, partition.writes, partition.offsets.safe()) == (0, 1, 4)
    Partitions.written(partition, 4, release=True)
    assert partition.offsets.safe() == 10
    assert not partition.busy()


def test_a_stale_delivery_is_remembered_for_when_the_partition_comes_back() -> None:
    """A delivery reported after its partition was dropped needs no write here, but its cooldown is kept and
    applies if the partition is assigned again."""
    partitions = Partitions(POLICY)
    partitions.assign(0)
    notification = raise_alert(partitions, 0, "gpu-1", 0)
    dropped = partitions.drop(0)
    assert dropped is not None
    assert list(dropped.outstanding) == [notification.id]
    assert partitions.pending == 0
    assert partitions.settle(Result(notification, Status.DELIVERED)) is None
    again = partitions.assign(0)
    assert judge(partitions, again, "gpu-1", 200.0, 5, T0 + 10) == (Verdict.COOLDOWN, [])


def test_restored_alerts_put_devices_in_cooldown() -> None:
    """Alerts read back from the alerts topic suppress the device's hot readings within the cooldown."""
    partitions = Partitions(POLICY)
    partition = partitions.assign(2)
    partitions.restored(partition, {"gpu-1": (Recorded(Kind.CRITICAL, T0),)}, since=T0 - 500)
    assert partition.restored_since == T0 - 500
    assert judge(partitions, partition, "gpu-1", 200.0, 0, T0 + 60)[0] is Verdict.COOLDOWN
    assert judge(partitions, partition, "gpu-2", 200.0, 1, T0 + 60)[0] is Verdict.ALERT


@given(
    st.lists(st.sampled_from([None, "gpu-1", "gpu-2", "gpu-3"]), min_size=1, max_size=30),
    st.lists(st.sampled_from(list(Status)), min_size=30, max_size=30),
    st.lists(st.booleans(), min_size=30, max_size=30),
    st.randoms(use_true_random=False),
)
def test_the_safe_offset_never_passes_an_unfinished_alert(
    devices: list[str | None], statuses: list[Status], acks: list[bool], rng: object
) -> None:
    """Whatever the results and write outcomes, in whatever order: the safe offset stays at or below every alert
    that is not both delivered (or parked) and acknowledged, and below every FAILED or ABANDONED one for good."""
    partitions = Partitions(AlertPolicy(150.0, 0.0, 0.0))  # no cooldown: every hot reading alerts
    partition = partitions.assign(0)
    raised = []
    for offset, device in enumerate(devices):
        if device is not None:
            raised.append(raise_alert(partitions, 0, device, offset, T0 + offset))
    partition.offsets.advance(len(devices))
    order = list(range(len(raised)))
    rng.shuffle(order)  # type: ignore[attr-defined]
    unfinished = {n.offset for n in raised}
    writes = []
    for index in order:
        notification, status = raised[index], statuses[index]
        assert partitions.settle(Result(notification, status)) is partition
        if status in (Status.DELIVERED, Status.REJECTED):
            writes.append((notification.offset, status is Status.DELIVERED or acks[index]))
        safe = partition.offsets.safe()
        assert safe is not None
        assert all(safe <= offset for offset in unfinished)
    rng.shuffle(writes)  # type: ignore[attr-defined]
    for offset, released in writes:
        Partitions.written(partition, offset, release=released)
        if released:
            unfinished.discard(offset)
        safe = partition.offsets.safe()
        assert safe is not None
        assert all(safe <= offset for offset in unfinished)
    assert partitions.pending == 0
    assert partition.offsets.safe() == (min(unfinished) if unfinished else len(devices))


# -- the sweep: backlogs, silence, forgetting, the replay floor ---------------------------------------------

SILENCE = AlertPolicy(150.0, 300.0, 60.0, silence_after=120.0)


def test_a_backlog_alert_goes_out_when_its_partition_is_caught_up_and_holds_its_first_record_till_then() -> None:
    """Late hot readings hold the first one's offset; a sweep of a partition read to its end for 5 s raises the
    backlog alert, which keeps that hold until settled (so a crash before it is recorded folds the backlog again)."""
    partitions = Partitions(POLICY)
    partition = partitions.assign(0)
    now = T0 + 7200
    for offset in range(3):
        at = T0 + offset * 60
        assert partitions.judge(partition, reading("gpu-1", 180.0 + offset, at), offset, at, now)[0] is Verdict.FOLDED
    partition.offsets.advance(3)
    assert partition.offsets.safe() == 0
    assert partitions.sweep(partition, now, caught_up=False, scan=False) == []
    assert partitions.sweep(partition, now, caught_up=True, scan=False) == [], "not between two fetches"
    assert partitions.sweep(partition, now + 4, caught_up=True, scan=False) == []
    [notification] = partitions.sweep(partition, now + 5, caught_up=True, scan=False)
    assert (notification.kind, notification.offset, notification.at) == (Kind.CRITICAL, 0, T0 + 120)
    assert notification.alert.temperature == 182.0
    assert partitions.settle(Result(notification, Status.DELIVERED)) is partition
    Partitions.written(partition, 0, release=True)
    assert partition.offsets.safe() == 3


def test_silence_is_judged_on_the_partition_s_clock_not_on_the_wall_clock() -> None:
    """A device that stops while others go on is silent once the partition's newest event time is 2 min past
    its last reading; a partition that is behind (a backlog) calls no one silent; once read to its end, the wall
    clock (less the skew) moves its clock after 5 s, so a publisher that stopped altogether still shows."""
    partitions = Partitions(SILENCE)
    partition = partitions.assign(0)
    offset = 0
    for t in range(0, 200, 10):
        for device in (["gpu-1", "gpu-2"] if t < 50 else ["gpu-2"]):
            partitions.judge(partition, reading(device, 60.0, T0 + t), offset, T0 + t, T0 + t)
            offset += 1
    assert partitions.sweep(partition, T0 + 4000, caught_up=False, scan=True) == [], "behind: no one is silent"
    [silent] = partitions.sweep(partition, T0 + 190, caught_up=False, scan=True)
    assert (silent.kind, silent.alert.device_id, silent.at) == (Kind.SILENT, "gpu-1", T0 + 190)
    assert silent.offset == 8, "held at the device's last reading, so a crash notices it again"
    assert partitions.sweep(partition, T0 + 370, caught_up=True, scan=True) == [], "read to its end only now"
    [stopped] = partitions.sweep(partition, T0 + 375, caught_up=True, scan=True)
    assert (stopped.kind, stopped.alert.device_id) == (Kind.SILENT, "gpu-2")


def test_state_that_can_no_longer_matter_is_forgotten_and_read_back_when_needed() -> None:
    """A scan drops devices whose alerts are past cooldown + 2*skew + margin and moves the restore watermark, so
    an old reading of such a device asks for a restore instead of alerting again."""
    partitions = Partitions(POLICY)
    partition = partitions.assign(0)
    partitions.restored(partition, {}, since=T0 - 1000)
    notification = raise_alert(partitions, 0, "gpu-1", 0, T0)
    partitions.settle(Result(notification, Status.DELIVERED))
    judge(partitions, partition, "gpu-2", 200.0, 1, T0 + 1000)
    partitions.sweep(partition, T0 + 1000, caught_up=False, scan=True)
    assert "gpu-1" not in partition.devices
    assert partitions.expired == 1
    assert partition.restored_since == POLICY.expiry_horizon(T0 + 1000)
    assert partitions.needs_restore(partition, T0 + 100)
    assert not partitions.needs_restore(partition, T0 + 1000)


def test_over_the_limit_the_devices_seen_longest_ago_are_forgotten_but_none_with_work_under_way() -> None:
    """With MAX_TRACKED_DEVICES=10, the 11th device makes the oldest go (down to 90 %); a device whose alert is
    in flight is kept, and the new device's alert is raised all the same."""
    partitions = Partitions(POLICY, max_devices=10)
    partition = partitions.assign(0)
    in_flight = raise_alert(partitions, 0, "gpu-00", 0, T0)
    for d in range(1, 10):
        judge(partitions, partition, f"gpu-{d:02d}", 100.0, d, T0 + d)
    assert partitions.over_limit() == 0
    verdict, [newest] = judge(partitions, partition, "gpu-new", 200.0, 10, T0 + 10)
    assert partitions.over_limit() == 2
    assert sorted(partition.devices) == ["gpu-00", *(f"gpu-{d:02d}" for d in range(3, 10)), "gpu-new"]
    assert (verdict, newest.alert.device_id, in_flight.alert.device_id) == (Verdict.ALERT, "gpu-new", "gpu-00")


def test_with_windows_the_commit_stays_where_a_restart_reads_the_window_again() -> None:
    """With SILENCE_AFTER=2m the safe offset trails the partition's clock by that much (and a margin), so a
    restart sees every device that may still fall silent; without windows it follows the records."""
    partitions = Partitions(SILENCE)
    partition = partitions.assign(0)
    for offset in range(600):
        at = T0 + offset
        partitions.judge(partition, reading(f"gpu-{offset % 3}", 60.0, at), offset, at, at)
        partition.offsets.advance(offset + 1)
        if offset % 10 == 0:
            partitions.sweep(partition, at, caught_up=False, scan=True)
    safe = partition.offsets.safe()
    assert safe is not None
    assert 600 - 130 - 20 <= safe <= 600 - 130, safe
    assert len(partition.replay or ()) < 200
