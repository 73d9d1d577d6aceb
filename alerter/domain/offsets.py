"""What one assigned partition owes before its offset may move: the at-least-once bookkeeping.

A record is *held* while work it caused is unfinished: an alert not yet
delivered and recorded on the alerts topic, or a copy to the dead-letter
topic not yet acknowledged. The offset that is safe to commit is the lowest
held offset (that record is read again after a crash), or, with nothing
held, the offset after the last record handled.
"""

from __future__ import annotations


class Offsets:
    __slots__ = ("committed", "holds", "next_offset")

    def __init__(self) -> None:
        self.next_offset: int | None = None  # after the last record handled
        self.committed: int | None = None  # what was last committed (None: unknown, commit again)
        self.holds: dict[int, int] = {}  # offset -> unfinished work items caused by that record

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
        """The offset to commit: everything below it is fully handled."""
        if self.holds:
            return min(self.holds)
        return self.next_offset

    def to_commit(self) -> int | None:
        """The safe offset if it moved since the last commit, else None."""
        safe = self.safe()
        return None if safe is None or safe == self.committed else safe
