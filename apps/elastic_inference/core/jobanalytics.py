"""Tracks, counts and events of an analysis job: its results in frame order through a tracker
and counter per type, as ``ei track`` does for a live stream
(:func:`.analytics.speed.track_results`).

It runs once every result is in, not as they come: workers store results out of order, and
a tracker needs every frame before the next; a done job's results never change, so the
answer is computed once and kept with the job (:meth:`.jobs.JobStore.store_analytics`).
Time is the frame's place in the video (frame number / fps), not when it was extracted, so
dwell times mean seconds of video. doc/analysis.md ("Tracks, counts and events") has the shapes.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .analytics.counting import LINE_WHATS, ZONE_WHATS, Counter, Event, what_of
from .analytics.rules import Rule
from .analytics.speed import track_results
from .analytics.tracker import Track
from .result import Result, parse_result

#: Events kept in a job's answer (the first ones, in frame order); ``events_total`` counts all.
MAX_EVENTS = 1000
#: Frame rate assumed when the container does not declare one.
DEFAULT_FPS = 25.0


@dataclass(frozen=True)
class JobAnalytics:
    """A job's counts per rule, its first events, and its tracks per frame."""

    counts: dict[str, dict[str, Any]]
    events: list[dict[str, Any]]
    events_total: int
    tracks: dict[int, dict[str, list[dict[str, Any]]]]  # frame -> type -> matched tracks

    def summary_json(self) -> str:
        """What the job's record keeps (the tracks go in their own HASH, per frame)."""
        return json.dumps({"counts": self.counts, "events": self.events,
                           "events_total": self.events_total}, separators=(",", ":"))


def _zeros(kind: str) -> dict[str, int]:
    return dict.fromkeys(ZONE_WHATS if kind == "zone" else LINE_WHATS, 0)


def empty_counts(rules: Sequence[Rule]) -> dict[str, dict[str, Any]]:
    """Every rule's counts at zero: a rule that saw nothing still answers under its name."""
    return {r.name: {"kind": r.kind, **_zeros(r.kind), "labels": {}} for r in rules}


def _count(counts: dict[str, dict[str, Any]], event: Event) -> None:
    rule = counts.get(event.rule)
    what = what_of(event)
    if rule is None or what not in rule:
        return
    rule[what] += 1
    rule["labels"].setdefault(event.label, _zeros(rule["kind"]))[what] += 1


def analyse(results: Mapping[str, Iterable[bytes]], rules: Sequence[Rule],
            fps: float) -> JobAnalytics:
    """Each type's stored results (any order; invalid ones skipped) sorted by frame number and
    tracked; events of every type in frame order (then type order)."""
    fps = fps if fps > 0 else DEFAULT_FPS
    counts = empty_counts(rules)
    found: list[tuple[int, int, dict[str, Any]]] = []
    tracks: dict[int, dict[str, list[dict[str, Any]]]] = {}
    occupancy: dict[str, int] = {}
    for order, (infer_type, raws) in enumerate(results.items()):
        parsed = sorted((r for r in (parse_result(raw) for raw in raws) if r is not None),
                        key=lambda r: r[0].seq)

        def frame(seq: int, result: Result, now: list[Track], events: list[Event],
                  infer_type: str = infer_type, order: int = order) -> None:
            matched = {t.id: t for t in now if t.misses == 0}
            tracks.setdefault(seq, {})[infer_type] = [t.to_json() for t in matched.values()]
            for e in events:
                _count(counts, e)
                seen = matched.get(e.track_id)
                found.append((seq, order, {
                    "type": infer_type, "rule": e.rule, "kind": e.kind,
                    "direction": e.direction, "track_id": e.track_id, "label": e.label,
                    "frame": seq, "ts": round(e.ts, 3),
                    "box": seen.to_json()["box"] if seen else None}))

        counter: Counter = track_results((r for r, _ in parsed), rules, frame,
                                         lambda r: r.seq / fps)
        for name, n in counter.occupancy().items():
            occupancy[name] = occupancy.get(name, 0) + n
    for name, n in occupancy.items():
        counts[name]["occupancy_end"] = n
    found.sort(key=lambda f: (f[0], f[1]))
    return JobAnalytics(counts, [f[2] for f in found[:MAX_EVENTS]], len(found), tracks)
