"""A stream's tracks, frame by frame, turned into counts and events by its rules.

A track is where its reference point is (:func:`.geometry.reference_point`, the bottom centre
of its box). A zone is occupied by the tracks whose point is inside it (border included); a
track entering it (including a track first seen inside) gives one ``enter``, leaving it or
ending while inside one ``leave``, and staying the zone's ``dwell_s`` seconds or more (when it
sets one) one ``dwell`` per stay. A line counts a crossing when a track's point goes from one
strict side of it to the other and the move between the two sightings passes through the drawn
segment (not just the infinite line); a point on the line is on no side, so standing on it and
stepping back is no crossing. Direction ``a->b``: from the left of the line drawn from its
first point (a) to its second (b) to its right, as seen on the image (y down): for a vertical
line drawn top to bottom, ``a->b`` is a move from the screen's right to its left. Only tracks
matched in the frame (``misses == 0``) move; a coasting track keeps its last place until it
ends.
"""

from __future__ import annotations

from collections import Counter as Tally
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from .geometry import Point, point_in_polygon, reference_point, segments_intersect, side
from .rules import Rule
from .tracker import Track

A_TO_B, B_TO_A = "a->b", "b->a"
#: What a zone counts, and a line (its directions): the names counts are kept under.
ZONE_WHATS = ("enter", "leave", "dwell")
LINE_WHATS = (A_TO_B, B_TO_A)


@dataclass(frozen=True)
class Event:
    """Something a rule saw: ``kind`` is enter, leave, dwell or cross (with ``direction``)."""

    kind: str
    rule: str
    track_id: int
    label: str
    seq: int
    ts: float
    direction: str = ""


def what_of(event: Event) -> str:
    """The counted name of an event: its kind, or for a crossing its direction."""
    return event.direction if event.kind == "cross" else event.kind


class Counter:
    """Occupancy, events and crossing counts of one stream's rules (pure: the caller's clock
    is the results' ``ts``)."""

    def __init__(self, rules: Sequence[Rule]) -> None:
        self.rules = tuple(rules)
        self._inside: dict[str, dict[int, float]] = {r.name: {} for r in self.rules
                                                      if r.kind == "zone"}  # id -> since
        self._dwelt: set[tuple[str, int]] = set()
        self._last: dict[tuple[str, int], tuple[int, Point]] = {}  # (line, id) -> side, point
        self._labels: dict[int, str] = {}
        self.crossings: Tally[tuple[str, str, str]] = Tally()  # (rule, direction, label)

    def occupancy(self) -> dict[str, int]:
        """Tracks inside each zone now."""
        return {name: len(ids) for name, ids in self._inside.items()}

    @staticmethod
    def _counts(rule: Rule, label: str) -> bool:
        return not rule.labels or label in rule.labels

    def update(self, tracks: Iterable[Track], seq: int, ts: float) -> list[Event]:
        """Feed one frame's tracks; the events it gives, zones then lines in rule order.
        A track id absent from ``tracks`` has ended."""
        tracks = list(tracks)
        events: list[Event] = []
        for t in tracks:
            self._labels[t.id] = t.label
        present = {t.id for t in tracks}
        moving = [t for t in tracks if t.misses == 0]
        for rule in self.rules:
            if rule.kind == "zone":
                events += self._zone(rule, present, moving, seq, ts)
            else:
                events += self._line(rule, present, moving, seq, ts)
        for gone in set(self._labels) - present:
            del self._labels[gone]
        return events

    def _zone(self, rule: Rule, present: set[int], moving: list[Track], seq: int,
              ts: float) -> list[Event]:
        inside = self._inside[rule.name]
        events = []
        for t in moving:
            if not self._counts(rule, t.label):
                continue
            now_in = point_in_polygon(reference_point(t.box), rule.points)
            if now_in and t.id not in inside:
                inside[t.id] = ts
                events.append(Event("enter", rule.name, t.id, t.label, seq, ts))
            elif not now_in and t.id in inside:
                events.append(self._leave(rule, t.id, t.label, seq, ts))
        for gone in [i for i in inside if i not in present]:
            events.append(self._leave(rule, gone, self._labels.get(gone, ""), seq, ts))
        if rule.dwell_s is not None:
            for tid, since in inside.items():
                if ts - since >= rule.dwell_s and (rule.name, tid) not in self._dwelt:
                    self._dwelt.add((rule.name, tid))
                    events.append(Event("dwell", rule.name, tid, self._labels.get(tid, ""),
                                        seq, ts))
        return events

    def _leave(self, rule: Rule, tid: int, label: str, seq: int, ts: float) -> Event:
        del self._inside[rule.name][tid]
        self._dwelt.discard((rule.name, tid))
        return Event("leave", rule.name, tid, label, seq, ts)

    def _line(self, rule: Rule, present: set[int], moving: list[Track], seq: int,
              ts: float) -> list[Event]:
        a, b = rule.points[0], rule.points[1]
        events = []
        for t in moving:
            if not self._counts(rule, t.label):
                continue
            p = reference_point(t.box)
            s = side(a, b, p)
            if s == 0:
                continue  # on the line: the last strict side stands
            key = (rule.name, t.id)
            last = self._last.get(key)
            self._last[key] = (s, p)
            if last is None or last[0] == s or not segments_intersect(last[1], p, a, b):
                continue
            direction = A_TO_B if last[0] < 0 else B_TO_A
            self.crossings[(rule.name, direction, t.label)] += 1
            events.append(Event("cross", rule.name, t.id, t.label, seq, ts, direction))
        for key in [k for k in self._last if k[0] == rule.name and k[1] not in present]:
            del self._last[key]
        return events
