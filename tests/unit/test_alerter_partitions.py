"""The owned partitions as a pure aggregate: notifications raised, results settled, writes acknowledged, hand-overs."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from alerter.domain.notification import Kind, Notification, Result, Status
from alerter.domain.partition import Partitions
from alerter.domain.policy import AlertPolicy, Verdict
from tests.alerter_support import reading

POLICY = AlertPolicy(threshold=150.0, cooldown=300.0, max_clock_skew=60.0)
T0 = 1_000_000.0


def raise_alert(partitions: Partitions, number: int, device: str, offset: int, at: float = T0) -> Notification:
    partition = partitions.owned[number]
    verdict, notification = partitions.decide(partition, reading(device, 200.0, at), offset, at)
    assert verdict is Verdict.ALERT
    assert notification is not None
    return notification


def test_an_alert_holds_its_record_until_delivered_and_written() -> None:
    """A raised alert holds its offset; delivery alone does not release it, the acknowledged write does."""
    partitions = Partitions(POLICY)
    partition = partitions.assign(0)
    notification = raise_alert(partitions, 0, "gpu-1", 4)
    partition.offsets.advance(10)
    assert (notification.kind, partitions.pending, partition.offsets.safe()) == (Kind.ALERT, 1, 4)
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
    verdict, _ = partitions.decide(again, reading("gpu-1", 200.0, T0 + 10), 5, T0 + 10)
    assert verdict is Verdict.COOLDOWN


def test_restored_alerts_put_devices_in_cooldown() -> None:
    """Alerts read back from the alerts topic suppress the device's hot readings within the cooldown."""
    partitions = Partitions(POLICY)
    partition = partitions.assign(2)
    partitions.restored(partition, {"gpu-1": (T0,)}, since=T0 - 500)
    assert partition.restored_since == T0 - 500
    assert partitions.decide(partition, reading("gpu-1", 200.0, T0 + 60), 0, T0 + 60)[0] is Verdict.COOLDOWN
    assert partitions.decide(partition, reading("gpu-2", 200.0, T0 + 60), 1, T0 + 60)[0] is Verdict.ALERT


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
