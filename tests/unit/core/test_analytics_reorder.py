"""The reorder buffer: results of one stream back in seq order, bounded and timed out."""

from __future__ import annotations

from typing import Any

import pytest

from elastic_inference.core.analytics.reorder import ReorderBuffer


def seqs(pairs: list[tuple[int, Any]]) -> list[int]:
    return [s for s, _ in pairs]


def test_in_order_items_pass_straight_through() -> None:
    buf: ReorderBuffer[str] = ReorderBuffer(bound=4, timeout=1.0)
    assert seqs(buf.push(10, "a", 0.0)) == [10]
    assert seqs(buf.push(11, "b", 0.0)) == [11]
    assert len(buf) == 0


def test_a_swapped_pair_comes_out_in_order() -> None:
    buf: ReorderBuffer[str] = ReorderBuffer(bound=4, timeout=1.0)
    buf.push(1, "a", 0.0)
    assert buf.push(3, "c", 0.1) == []
    assert buf.push(2, "b", 0.2) == [(2, "b"), (3, "c")]
    assert buf.skipped == 0 and buf.late == 0


def test_a_gap_is_given_up_after_the_timeout() -> None:
    buf: ReorderBuffer[str] = ReorderBuffer(bound=8, timeout=0.5)
    buf.push(1, "a", 0.0)
    assert buf.push(3, "c", 1.0) == []
    assert buf.push(4, "d", 1.2) == []
    assert buf.poll(1.4) == []
    assert seqs(buf.poll(1.5)) == [3, 4]  # 0.5 s after the oldest held one
    assert buf.skipped == 1
    assert buf.push(2, "b", 1.6) == [] and buf.late == 1  # too late: the tracker moved on


def test_the_bound_releases_without_waiting() -> None:
    buf: ReorderBuffer[int] = ReorderBuffer(bound=3, timeout=60.0)
    buf.push(0, 0, 0.0)
    for s in (2, 3, 4):
        assert buf.push(s, s, 0.0) == []
    assert seqs(buf.push(5, 5, 0.0)) == [2, 3, 4, 5]  # four held > bound 3
    assert buf.skipped == 1


def test_duplicates_are_dropped_and_flush_empties() -> None:
    buf: ReorderBuffer[str] = ReorderBuffer(bound=4, timeout=1.0)
    buf.push(1, "a", 0.0)
    buf.push(3, "c", 0.0)
    buf.push(3, "c again", 0.0)
    assert buf.late == 1
    assert buf.flush() == [(3, "c")]
    assert len(buf) == 0


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError):
        ReorderBuffer(bound=0)


def test_a_restarted_stream_starts_the_order_again() -> None:
    buf: ReorderBuffer[str] = ReorderBuffer(bound=4, timeout=1.0)
    for s in range(100, 110):
        buf.push(s, "old", 0.0)
    buf.push(111, "held", 0.0)
    assert buf.push(107, "late", 0.0) == [] and buf.late == 1  # within the bound: late
    assert buf.push(0, "new", 0.1) == [(111, "held"), (0, "new")]  # far behind: a restart
    assert seqs(buf.push(1, "new", 0.1)) == [1]
