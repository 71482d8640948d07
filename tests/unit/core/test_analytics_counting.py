"""Counting: enter/leave once per passage, dwell once, crossings per direction, labels."""

from __future__ import annotations

from dataclasses import replace

from elastic_inference.core.analytics.counting import A_TO_B, B_TO_A, Counter, Event
from elastic_inference.core.analytics.rules import Rule
from elastic_inference.core.analytics.tracker import Track

ZONE = Rule("door", "zone", ((0.4, 0.4), (0.6, 0.4), (0.6, 0.6), (0.4, 0.6)))
LINE = Rule("gate", "line", ((0.5, 0.0), (0.5, 1.0)))  # vertical, drawn top to bottom


def feet(tid: int, x: float, y: float = 0.5, label: str = "person", misses: int = 0) -> Track:
    """A track whose reference point (bottom centre) is at (x, y)."""
    return Track(tid, label, (x - 0.02, y - 0.1, x + 0.02, y), 0.9, 1, 1, misses)


def walk(counter: Counter, xs: list[float], tid: int = 1, label: str = "person",
         dt: float = 1.0) -> list[Event]:
    events: list[Event] = []
    for seq, x in enumerate(xs):
        events += counter.update([feet(tid, x, label=label)], seq, seq * dt)
    return events


def kinds(events: list[Event]) -> list[str]:
    return [e.kind + e.direction for e in events]


def test_enter_and_leave_once_per_passage_with_occupancy() -> None:
    counter = Counter([ZONE])
    events = walk(counter, [0.2, 0.45, 0.5, 0.55, 0.7, 0.55, 0.5])
    assert kinds(events) == ["enter", "leave", "enter"]
    assert [e.seq for e in events] == [1, 4, 5]
    assert counter.occupancy() == {"door": 1}
    ended = counter.update([], 7, 7.0)  # the track ended inside
    assert [(e.kind, e.track_id, e.label) for e in ended] == [("leave", 1, "person")]
    assert counter.occupancy() == {"door": 0}


def test_a_track_first_seen_inside_enters_and_the_border_is_inside() -> None:
    counter = Counter([ZONE])
    assert kinds(walk(counter, [0.6, 0.61])) == ["enter", "leave"]


def test_dwell_once_per_stay_by_each_zones_own_limit() -> None:
    slow = Rule("bench", "zone", ZONE.points, dwell_s=6.0)
    counter = Counter([replace(ZONE, dwell_s=3.0), slow])
    events = walk(counter, [0.5] * 8 + [0.8, 0.5, 0.5, 0.5, 0.5])
    door = [e for e in events if e.rule == "door"]
    assert kinds(door) == ["enter", "dwell", "leave", "enter", "dwell"]
    assert [e.ts for e in door if e.kind == "dwell"] == [3.0, 12.0]
    bench = [e for e in events if e.rule == "bench"]
    assert kinds(bench) == ["enter", "dwell", "leave", "enter"]  # the second stay is 4 s
    assert [e.ts for e in bench if e.kind == "dwell"] == [6.0]


def test_no_dwell_without_a_limit() -> None:
    assert "dwell" not in kinds(walk(Counter([ZONE]), [0.5] * 20))


def test_crossings_per_direction() -> None:
    counter = Counter([LINE])
    events = walk(counter, [0.3, 0.45, 0.55, 0.7])  # screen left to right
    events += walk(counter, [0.8, 0.6, 0.4], tid=2)  # screen right to left
    events += walk(counter, [0.8, 0.6, 0.4], tid=3)
    # Drawn top to bottom, the line's left is the screen's right: a->b is right to left.
    assert kinds(events) == ["cross" + B_TO_A, "cross" + A_TO_B, "cross" + A_TO_B]
    assert counter.crossings == {("gate", B_TO_A, "person"): 1, ("gate", A_TO_B, "person"): 2}


def test_standing_on_the_line_and_stepping_back_is_no_crossing() -> None:
    counter = Counter([LINE])
    assert walk(counter, [0.4, 0.5, 0.5, 0.4, 0.3]) == []
    assert kinds(walk(counter, [0.4, 0.5, 0.5, 0.6], tid=2)) == ["cross" + B_TO_A]


def test_passing_beside_the_segment_is_no_crossing() -> None:
    short = Rule("short", "line", ((0.5, 0.0), (0.5, 0.3)))
    counter = Counter([short])
    assert walk(counter, [0.3, 0.7]) == []  # feet at y 0.5: below the segment's end


def test_a_jump_back_and_forth_counts_each_way() -> None:
    counter = Counter([LINE])
    assert kinds(walk(counter, [0.4, 0.6, 0.4])) == ["cross" + B_TO_A, "cross" + A_TO_B]


def test_coasting_tracks_do_not_move() -> None:
    counter = Counter([LINE, ZONE])
    counter.update([feet(1, 0.3)], 0, 0.0)
    assert counter.update([feet(1, 0.7, misses=2)], 1, 1.0) == []  # a prediction
    assert kinds(counter.update([feet(1, 0.7)], 2, 2.0)) == ["cross" + B_TO_A]


def test_label_filter() -> None:
    cars = Rule("gate", "line", LINE.points, ("car",))
    zone = Rule("lot", "zone", ZONE.points, ("car",))
    counter = Counter([cars, zone])
    assert walk(counter, [0.3, 0.5, 0.7]) == []  # a person: neither rule counts it
    events = walk(counter, [0.3, 0.5, 0.7], tid=2, label="car")
    assert kinds(events) == ["enter", "cross" + B_TO_A, "leave"]  # rule order per frame
    assert counter.crossings == {("gate", B_TO_A, "car"): 1}
