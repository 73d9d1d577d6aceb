"""Which watched readings the cluster has acknowledged, without a Python delivery report per reading.

The original logs `Published HIGH TEMP` after ProduceSync returned, i.e. once
the broker acknowledged the reading. A per-message success report would do,
but confluent-kafka filters `delivery.report.only.error` for the whole
producer, and turning it off costs a Python call per reading (measured: about
0.8 µs of CPU per reading, a third of the produce loop). So success is read
from what librdkafka already counts instead:

- librdkafka numbers the messages of each partition 1, 2, 3, ... in the order
  they are queued (its internal msgid) and reports, per partition, the highest
  one the brokers acknowledged (`acked_msgid` in its statistics);
- the partition of a key is murmur2(key) mod partitions, as librdkafka's
  `murmur2_random` partitioner (and Kafka's Java client) computes it, so the
  msgid of each record we queue is known when we queue it;
- a watched record is acknowledged once acked_msgid of its partition reaches its
  msgid, unless a failure report named it first (failures are still reported
  one by one); and when nothing at all is left in the producer's queue, every
  watched record that did not fail was acknowledged.

Pure bookkeeping: the sink feeds it what it queued, failures, statistics and
"queue empty"; the tokens it hands back are whatever the caller watched.
"""

from __future__ import annotations

import collections
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final, Generic, TypeVar

import numpy as np
import numpy.typing as npt

T = TypeVar("T")
_MASK: Final = 0xFFFFFFFF


def murmur2(data: bytes) -> int:
    """Kafka's murmur2 (the Java client's Utils.murmur2 and librdkafka's rd_murmur2), as an unsigned 32-bit int."""
    m, length = 0x5BD1E995, len(data)
    h = (0x9747B28C ^ length) & _MASK
    for i in range(0, length - length % 4, 4):
        k = int.from_bytes(data[i : i + 4], "little")
        k = (k * m) & _MASK
        k ^= k >> 24
        k = (k * m) & _MASK
        h = ((h * m) & _MASK) ^ k
    tail = data[length - length % 4 :]
    if len(tail) == 3:
        h ^= tail[2] << 16
    if len(tail) >= 2:
        h ^= tail[1] << 8
    if tail:
        h = ((h ^ tail[0]) * m) & _MASK
    h ^= h >> 13
    h = (h * m) & _MASK
    return h ^ (h >> 15)


def partition_for(key: bytes, partitions: int) -> int:
    """The partition librdkafka's murmur2_random partitioner picks for a non-empty key."""
    return (murmur2(key) & 0x7FFFFFFF) % partitions


@dataclass(frozen=True)
class _Layout:
    """Where one list of keys goes: each key's partition and its rank among the list's keys of that partition."""

    partitions: npt.NDArray[np.intp]
    ranks: npt.NDArray[np.intp]


@dataclass
class _Batch(Generic[T]):
    """The watched records of one send: where each sits, which are settled, and the values of the named ones."""

    partitions: npt.NDArray[np.intp]
    msgids: npt.NDArray[np.int64]
    tokens: list[T]  # for the first len(tokens) watched records
    named_values: dict[bytes, int]  # value -> position, to recognise a failure report of a named record
    settled: npt.NDArray[np.bool_]


class AckTracker(Generic[T]):
    """Watched records waiting for their partition's acknowledgement: all of them counted, a few named.

    At fleet scale half the readings may be watched (above 80 °C), so the
    bookkeeping is numpy arrays per send, not Python objects per record, and
    no record value is kept except those of the few named ones. A failure
    report of a watched record that is not named is remembered as a debt
    subtracted from the acknowledged count (librdkafka may count it as passed
    once later records of its partition are acknowledged).
    """

    def __init__(self, partitions: int) -> None:
        self._partition_count = partitions
        self._queued = np.zeros(partitions, dtype=np.int64)  # msgid of the last record queued, per partition
        self._batches: collections.deque[_Batch[T]] = collections.deque()
        self._acknowledged_count = 0
        self._failed_debt = 0
        self._acknowledged: list[T] = []
        self._cache: tuple[Sequence[bytes], _Layout] | None = None
        self._key_partitions: dict[bytes, int] = {}

    def queued(
        self,
        keys: Sequence[bytes],
        values: Sequence[bytes],
        count: int,
        watched: npt.NDArray[np.intp],
        tokens: Sequence[T] = (),
    ) -> None:
        """The first `count` records were queued in order; `watched` indexes those to follow, `tokens` name the
        first len(tokens) of them."""
        layout = self._layout(keys)
        watched = watched[watched < count]
        if len(watched):
            named = watched[: len(tokens)].tolist()
            self._batches.append(_Batch(
                partitions=layout.partitions[watched],
                msgids=self._queued[layout.partitions[watched]] + layout.ranks[watched] + 1,
                tokens=list(tokens[: len(named)]),
                named_values={values[index]: position for position, index in enumerate(named)},
                settled=np.zeros(len(watched), dtype=bool),
            ))
        self._queued += np.bincount(layout.partitions[:count], minlength=self._partition_count)

    def failed(self, value: bytes | None, watched: bool) -> None:
        """A failure report arrived for this record value (`watched`: one of those followed); it will never count."""
        if value is None or not watched:
            return
        for batch in self._batches:
            position = batch.named_values.get(value)
            if position is not None and not batch.settled[position]:
                batch.settled[position] = True  # settled without being acknowledged
                return
        self._failed_debt += 1

    def statistics(self, stats: Any, topic: str) -> None:
        """Release what librdkafka's statistics (decoded JSON) say was acknowledged on each partition."""
        try:
            partitions = stats["topics"][topic]["partitions"]
        except (KeyError, TypeError):
            return
        acked = np.zeros(self._partition_count, dtype=np.int64)
        for name, entry in partitions.items() if isinstance(partitions, dict) else ():
            try:
                partition, value = int(name), int(entry["acked_msgid"])
            except (KeyError, TypeError, ValueError):
                continue
            if 0 <= partition < self._partition_count:
                acked[partition] = value
        self._release(acked)

    def drained(self) -> None:
        """The producer holds nothing any more: every watched record was acknowledged or reported failed."""
        self._release(self._queued)
        self._failed_debt = 0  # every failed record was released above, so its debt is paid

    def take_acknowledged(self) -> tuple[int, list[T]]:
        """How many watched records were acknowledged since the last call, and the tokens among them."""
        count, tokens = self._acknowledged_count, self._acknowledged
        self._acknowledged_count, self._acknowledged = 0, []
        return count, tokens

    def watching(self) -> int:
        return sum(int(np.count_nonzero(~batch.settled)) for batch in self._batches)

    def _release(self, acked: npt.NDArray[np.int64]) -> None:
        for batch in self._batches:
            released = ~batch.settled & (batch.msgids <= acked[batch.partitions])
            if released.any():
                batch.settled |= released
                self._acknowledged_count += int(np.count_nonzero(released))
                named = released[: len(batch.tokens)]
                self._acknowledged.extend(token for token, yes in zip(batch.tokens, named.tolist(), strict=True) if yes)
        paid = min(self._failed_debt, self._acknowledged_count)
        self._acknowledged_count -= paid
        self._failed_debt -= paid
        while self._batches and self._batches[0].settled.all():
            self._batches.popleft()

    def _layout(self, keys: Sequence[bytes]) -> _Layout:
        """Partitions and ranks of a key list; the simulator sends the same list every tick, so it is kept."""
        if self._cache is not None and self._cache[0] is keys:
            return self._cache[1]
        cache = self._key_partitions
        if len(cache) > 1_000_000:  # keys of another kind than device ids: do not grow without bound
            cache.clear()
        partitions = np.fromiter(
            (cache[k] if k in cache else cache.setdefault(k, partition_for(k, self._partition_count)) for k in keys),
            dtype=np.intp,
            count=len(keys),
        )
        order = np.argsort(partitions, kind="stable")
        ranks = np.empty(len(keys), dtype=np.intp)
        starts = np.searchsorted(partitions[order], np.arange(self._partition_count))
        counts = np.bincount(partitions, minlength=self._partition_count)
        ranks[order] = np.arange(len(keys)) - np.repeat(starts, counts)
        layout = _Layout(partitions, ranks)
        self._cache = (keys, layout)
        return layout
