"""One stream's results turned into tracked frames: what ``ei track`` does per stream, pure.

Per inference type a :class:`.reorder.ReorderBuffer` (several workers publish one stream's
results slightly out of order), a :class:`.tracker.Tracker` and a :class:`.counting.Counter`
of the stream's rules. The tracker numbers its tracks itself; ids on the wire must be unique
per stream and never reused, also after another replica takes the stream over, so each new
tracker id is mapped to one allocated by the caller (``allocate(n)``: ``ei track`` uses INCRBY
on ``ei:track:ids:{stream}``). Counting sees the wire ids, so events carry them too.

``totals`` are the stream's counts since its rules were written, ``(rule, what, label) ->
n``; the caller seeds them from Redis when it takes the stream, since they continue across a
takeover. Each tracked frame comes out as the :class:`.events.FrameEvents` an event handler
takes (with no events when nothing happened). Nothing here talks to Redis or reads a clock:
``now`` is the caller's monotonic time (for the reorder timeout), ``ts`` the results' capture
time (for dwell).
"""

from __future__ import annotations

import dataclasses
from collections import Counter as Tally
from collections.abc import Callable, Mapping
from typing import Any

from ..result import Result
from .counting import LINE_WHATS, ZONE_WHATS, Counter, what_of
from .events import FrameEvents
from .reorder import ReorderBuffer
from .rules import Rule
from .tracker import Tracker

#: ``allocate(n)`` returns the first of ``n`` new consecutive track ids.
Allocate = Callable[[int], int]


class _TypeState:
    """Reorder buffer, tracker, counter and id map of one stream and type."""

    def __init__(self, rules: tuple[Rule, ...], bound: int, timeout: float) -> None:
        self.buffer: ReorderBuffer[tuple[Result, str]] = ReorderBuffer(bound, timeout)
        self.tracker = Tracker()
        self.counter = Counter(rules)
        self.ids: dict[int, int] = {}  # tracker id -> wire id


class StreamPipeline:
    """Everything one owner keeps for one stream."""

    def __init__(self, stream: str, rules: tuple[Rule, ...], allocate: Allocate,
                 totals: Mapping[tuple[str, str, str], int] | None = None,
                 rules_version: int = 0, bound: int = 16, timeout: float = 0.5) -> None:
        self.stream = stream
        self.rules = rules
        self.rules_version = rules_version
        self.allocate = allocate
        self.bound, self.timeout = bound, timeout
        self.totals: Tally[tuple[str, str, str]] = Tally(totals or {})
        self.types: dict[str, _TypeState] = {}

    def set_rules(self, rules: tuple[Rule, ...], version: int) -> None:
        """New rules: every type's counter starts again, and the totals from zero (counts are
        "since the rules were written"); tracks and their ids go on."""
        self.rules, self.rules_version = rules, version
        self.totals.clear()
        for state in self.types.values():
            state.counter = Counter(rules)

    def _state(self, infer_type: str) -> _TypeState:
        state = self.types.get(infer_type)
        if state is None:
            state = self.types[infer_type] = _TypeState(self.rules, self.bound, self.timeout)
        return state

    def push(self, result: Result, ref: str, now: float) -> list[FrameEvents]:
        """One result (of this stream) and its frame's id in the frame store; the frames now
        tracked, in seq order (their JPEGs are fetched by the caller, for those with events
        only: :func:`.events.with_frames`)."""
        state = self._state(result.type)
        return [self._track(state, r, f) for _, (r, f) in state.buffer.push(result.seq,
                                                                           (result, ref), now)]

    def poll(self, now: float) -> list[FrameEvents]:
        """Frames released because a gap timed out (call it when nothing arrives)."""
        out: list[FrameEvents] = []
        for state in self.types.values():
            out += [self._track(state, r, f) for _, (r, f) in state.buffer.poll(now)]
        return out

    def late(self) -> int:
        """Results dropped for arriving after their seq was passed, all types."""
        return sum(s.buffer.late for s in self.types.values())

    def skipped(self) -> int:
        """Seqs given up on (never arrived within the reorder bound), all types."""
        return sum(s.buffer.skipped for s in self.types.values())

    def _track(self, state: _TypeState, result: Result, ref: str) -> FrameEvents:
        local = state.tracker.update(result.detections, result.seq, result.ts_capture)
        fresh = sorted(t.id for t in local if t.id not in state.ids)
        if fresh:
            first = self.allocate(len(fresh))
            state.ids.update({tid: first + n for n, tid in enumerate(fresh)})
        alive = {t.id for t in local}
        for gone in [tid for tid in state.ids if tid not in alive]:
            del state.ids[gone]
        tracks = tuple(dataclasses.replace(t, id=state.ids[t.id]) for t in local)
        events = tuple(state.counter.update(tracks, result.seq, result.ts_capture))
        for e in events:
            self.totals[(e.rule, what_of(e), e.label)] += 1
        return FrameEvents(self.stream, result.type, result.seq, result.ts_capture, result.w,
                           result.h, b"", events, tracks, self.rules, ref)

    def occupancy(self) -> dict[str, int]:
        """Tracks inside each zone now, all types together."""
        out = {r.name: 0 for r in self.rules if r.kind == "zone"}
        for state in self.types.values():
            for name, n in state.counter.occupancy().items():
                out[name] = out.get(name, 0) + n
        return out

    def counts(self) -> dict[str, dict[str, int]]:
        """Per rule, the totals over all labels (and a zone's occupancy): the ``counts`` of a
        tracks entry and of a counts-history entry."""
        by_rule: dict[str, Tally[str]] = {}
        for (rule, what, _), n in self.totals.items():
            by_rule.setdefault(rule, Tally())[what] += n
        occupancy = self.occupancy()
        out: dict[str, dict[str, int]] = {}
        for r in self.rules:
            got = by_rule.get(r.name, Tally())
            if r.kind == "zone":
                out[r.name] = {"occupancy": occupancy.get(r.name, 0),
                               **{w: got[w] for w in ZONE_WHATS}}
            else:
                out[r.name] = {w: got[w] for w in LINE_WHATS}
        return out


def tracks_entry(frame: FrameEvents, rules_version: int,
                 counts: Mapping[str, Mapping[str, int]]) -> dict[str, Any]:
    """The JSON of one ``ei:tracks:{stream}`` entry (doc/analytics.md, "Wire"): the tracks
    matched in this frame (a coasting track's predicted box is not shown)."""
    return {
        "v": 1, "stream": frame.stream, "type": frame.type, "seq": frame.seq,
        "ts_capture": frame.ts, "frame": {"w": frame.w, "h": frame.h},
        "rules_version": rules_version,
        "tracks": [t.to_json() for t in frame.tracks if t.misses == 0],
        "counts": counts,
    }
