"""At-least-once bookkeeping: the commit never passes a record whose alert or dead-letter copy is unfinished."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from alerter.adapters.dead_letters import reason_code, why_unreadable
from alerter.domain.offsets import Offsets


def test_nothing_to_commit_before_any_record() -> None:
    """A freshly assigned partition has no safe offset until a record was handled."""
    assert Offsets().to_commit() is None


def test_safe_offset_stops_at_the_lowest_unfinished_record() -> None:
    """With records 0-9 handled and 3 and 7 holding work, the safe offset is 3, then 7, then 10."""
    offsets = Offsets()
    offsets.hold(3)
    offsets.hold(7)
    offsets.advance(10)
    assert offsets.safe() == 3
    offsets.release(3)
    assert offsets.safe() == 7
    offsets.release(7)
    assert offsets.safe() == 10


def test_to_commit_reports_only_moves() -> None:
    """The same safe offset is not committed twice; an unknown commit state commits again."""
    offsets = Offsets()
    offsets.advance(5)
    assert offsets.to_commit() == 5
    offsets.committed = 5
    assert offsets.to_commit() is None
    offsets.committed = None
    assert offsets.to_commit() == 5


@given(st.lists(st.tuples(st.integers(0, 50), st.booleans()), max_size=80), st.data())
def test_safe_offset_never_passes_held_work(records: list[tuple[int, bool]], data: st.DataObject) -> None:
    """For any records with work, released in any order, the safe offset is never above an unfinished one."""
    offsets = Offsets()
    held: list[int] = []
    for offset, has_work in sorted(records):
        if has_work:
            offsets.hold(offset)
            held.append(offset)
        offsets.advance(offset + 1)
    order = data.draw(st.permutations(held))
    for index, offset in enumerate(order):
        safe = offsets.safe()
        assert safe is not None
        assert all(safe <= unfinished for unfinished in order[index:])
        offsets.release(offset)
    if records:
        assert offsets.safe() == max(o for o, _ in records) + 1


def test_unreadable_records_get_a_bounded_reason_code() -> None:
    """Each kind of bad record maps to one of a few reason codes (metric labels), with the codec's reason kept."""
    cases = {
        None: "empty",
        b"x" * 70_000: "too_large",
        b"{not json": "malformed_json",
        b'{"device_id": "a", "temperature": "hot", "timestamp": "2024-01-01T00:00:00Z"}': "invalid_field",
        b'{"device_id": "a", "temperature": 1e999, "timestamp": "2024-01-01T00:00:00Z"}': "invalid_field",
        b'{"device_id": "a", "timestamp": "2024-01-01T00:00:00Z"}': "invalid_field",
    }
    for value, code in cases.items():
        error = why_unreadable(value)
        assert reason_code(error) == code, (value, error.reason)
        assert error.reason
