"""Following watched records to their acknowledgement through librdkafka's per-partition counters (pure)."""

from __future__ import annotations

from typing import Any

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from publisher.acks import AckTracker, murmur2, partition_for

TOPIC = "readings"


def stats(acked: dict[int, int]) -> dict[str, Any]:
    return {"topics": {TOPIC: {"partitions": {str(p): {"acked_msgid": a} for p, a in acked.items()}}}}


def test_murmur2_matches_kafkas_java_client() -> None:
    """Kafka's murmur2 on known keys (values of the Java client's Utils.murmur2, read as unsigned)."""
    assert murmur2(b"") == 275646681
    assert murmur2(b"21") & 0x7FFFFFFF == (-973932308) & 0x7FFFFFFF
    assert partition_for(b"gpu-0000", 6) == (murmur2(b"gpu-0000") & 0x7FFFFFFF) % 6


def test_a_watched_record_is_acknowledged_when_its_partition_counter_reaches_it() -> None:
    """A hot record is reported only once acked_msgid of its partition is at least its position there."""
    keys = [f"gpu-{i:04d}".encode() for i in range(12)]
    values = [b"v%d" % i for i in range(12)]
    tracker: AckTracker[str] = AckTracker(3)
    tracker.queued(keys, values, 12, np.array([7]), ["hot-7"])
    partition = partition_for(keys[7], 3)
    position = sum(1 for k in keys[:8] if partition_for(k, 3) == partition)
    tracker.statistics(stats({partition: position - 1}), TOPIC)
    assert tracker.take_acknowledged() == (0, [])
    tracker.statistics(stats({partition: position}), TOPIC)
    assert tracker.take_acknowledged() == (1, ["hot-7"])
    assert tracker.watching() == 0


def test_a_failed_watched_record_is_never_acknowledged() -> None:
    """A failure report for a watched record keeps it out of the names and the count, even when later records of
    its partition are acknowledged; failures of records not watched change nothing."""
    keys = [b"a"] * 5
    tracker: AckTracker[str] = AckTracker(1)
    tracker.queued(keys, [b"1", b"2", b"3", b"4", b"5"], 5, np.array([0, 2, 3]), ["first", "third"])
    tracker.failed(b"1", watched=True)  # named
    tracker.failed(b"4", watched=True)  # watched, counted only
    tracker.failed(b"2", watched=False)
    tracker.statistics(stats({0: 5}), TOPIC)
    assert tracker.take_acknowledged() == (1, ["third"])


def test_an_empty_queue_acknowledges_everything_not_failed() -> None:
    """When the producer holds nothing, every watched record that did not fail was acknowledged."""
    keys = [b"x", b"y", b"z"]
    tracker: AckTracker[int] = AckTracker(4)
    tracker.queued(keys, [b"1", b"2", b"3"], 3, np.array([0, 1, 2]), [0, 1])
    tracker.failed(b"2", watched=True)
    tracker.drained()
    assert tracker.take_acknowledged() == (2, [0])


def test_records_not_queued_are_not_watched_and_not_counted() -> None:
    """When a send stops early, only the queued prefix counts toward the partitions' positions."""
    tracker: AckTracker[str] = AckTracker(1)
    tracker.queued([b"k"] * 4, [b"1", b"2", b"3", b"4"], 2, np.array([1, 3]), ["second", "never queued"])
    tracker.queued([b"k"], [b"5"], 1, np.array([0]), ["fifth"])
    tracker.statistics(stats({0: 2}), TOPIC)
    assert tracker.take_acknowledged() == (1, ["second"])
    tracker.statistics(stats({0: 3}), TOPIC)
    assert tracker.take_acknowledged() == (1, ["fifth"])
    assert tracker.watching() == 0


def test_unreadable_statistics_are_ignored() -> None:
    """Statistics without the topic, with strange partitions or values, release nothing and raise nothing."""
    tracker: AckTracker[str] = AckTracker(2)
    tracker.queued([b"k"], [b"1"], 1, np.array([0]), ["one"])
    bad: Any
    for bad in (None, {}, {"topics": []}, {"topics": {TOPIC: {"partitions": {"x": {}, "-1": {"acked_msgid": 9},
                                                                              "0": {"acked_msgid": "n"}}}}}):
        tracker.statistics(bad, TOPIC)
    assert tracker.take_acknowledged() == (0, [])


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.sampled_from([b"gpu-%04d" % i for i in range(40)]), min_size=1, max_size=60),
    st.integers(1, 8),
    st.data(),
)
def test_positions_match_a_per_partition_count_of_everything_queued(
    keys: list[bytes], partitions: int, data: st.DataObject
) -> None:
    """Over several sends, each watched record is released exactly when its partition's count reaches it."""
    tracker: AckTracker[int] = AckTracker(partitions)
    expected: dict[int, tuple[int, int]] = {}
    counts = np.zeros(partitions, dtype=int)
    token = 0
    for _ in range(3):
        values = [b"%d" % (token + i) for i in range(len(keys))]
        tracker.queued(keys, values, len(keys), np.arange(len(keys)), [token + i for i in range(len(keys))])
        for i, key in enumerate(keys):
            p = partition_for(key, partitions)
            counts[p] += 1
            expected[token + i] = (p, int(counts[p]))
        token += len(keys)
    acked = {p: data.draw(st.integers(0, int(counts[p]))) for p in range(partitions)}
    tracker.statistics(stats(acked), TOPIC)
    count, tokens = tracker.take_acknowledged()
    due = {t for t, (p, position) in expected.items() if position <= acked[p]}
    assert set(tokens) == due
    assert count == len(due)
