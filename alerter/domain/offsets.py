"""What one assigned partition owes before its offset may move: the at-least-once bookkeeping.

A record is *held* while work it caused is unfinished: an alert not yet
delivered and recorded on the alerts topic, or a copy to the dead-letter
topic not yet acknowledged. The offset that is safe to commit is the lowest
held offset (that record is read again after a crash), or, with nothing
held, the offset after the last record handled.

When decisions depend on a window of past readings (a trend, a cool run, a
silence timer), the commit also stays at the `floor`: the first record a
restart must read again to see that window whole (ReplayPoints), so a
restarted or new owner rebuilds the same state from the same records.
"""

from __future__ import annotations

import bisect
import math


class Offsets:
    __slots__ = ("committed", "floor", "holds", "next_offset")

    def __init__(self) -> None:
        self.next_offset: int | None = None  # after the last record handled
        self.committed: int | None = None  # what was last committed (None: unknown, commit again)
        self.holds: dict[int, int] = {}  # offset -> unfinished work items caused by that record
        self.floor: int | None = None  # records from here on are needed again after a restart (None: none)

    def advance(self, next_offset: int) -> None:
        if self.next_offset is None or next_offset > self.next_offset:
            self.next_offset = next_offset

    def hold(self, offset: int) -> None:
        self.holds[offset] = self.holds.get(offset, 0) + 1

    def release(self, offset: int) -> None:
        left = self.holds.get(offset, 0) - 1
        if left > 0:
            self.holds[offset] = left
        else:
            self.holds.pop(offset, None)

    def safe(self) -> int | None:
        """The offset to commit: everything below it is fully handled and not needed again."""
        safe = min(self.holds) if self.holds else self.next_offset
        if self.floor is not None and (safe is None or self.floor < safe):
            return self.floor
        return safe

    def to_commit(self) -> int | None:
        """The safe offset if it moved since the last commit, else None."""
        safe = self.safe()
        return None if safe is None or safe == self.committed else safe


class ReplayPoints:
    """Where a restart must start reading so that it sees again every record whose event time is at or after a
    given time, in records' offset order whatever their event-time order.

    Keeps checkpoints (offset, greatest event time of the records before it),
    one per `granularity` seconds of event-time progress, so its size is
    bounded by the time kept / granularity. Answers are conservative: they may
    start a little earlier than needed, never later, for any time at or after
    the last `prune`.
    """

    __slots__ = ("_granularity", "_points", "_running")

    def __init__(self, granularity: float) -> None:
        self._granularity = granularity
        self._points: list[tuple[int, float]] = []
        self._running = -math.inf  # greatest event time noted since the points began

    def note(self, offset: int, at: float) -> None:
        """A record at `offset` (offsets increasing) with event time `at`."""
        points = self._points
        if not points:
            points.append((offset, -math.inf))
        elif self._running >= points[-1][1] + self._granularity:
            points.append((offset, self._running))
        self._running = max(self._running, at)

    def start(self, since: float) -> int | None:
        """The offset to read again from so that every record with event time >= `since` is seen; None when
        every record noted is older (nothing needs reading again)."""
        points = self._points
        if not points or self._running < since:
            return None
        index = bisect.bisect_left(points, since, key=lambda point: point[1])  # first point with time >= since
        return points[max(0, index - 1)][0]

    def prune(self, since: float) -> None:
        """Forget what only times before `since` need; with every record older, start afresh."""
        points = self._points
        if self._running < since:
            points.clear()
            self._running = -math.inf
            return
        index = bisect.bisect_left(points, since, key=lambda point: point[1])
        if index > 1:
            del points[: index - 1]

    def __len__(self) -> int:
        return len(self._points)
