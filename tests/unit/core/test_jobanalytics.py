"""A job's results through tracker and counter: counts under rule names, events, tracks."""

from __future__ import annotations

import json
import random

from elastic_inference.core.analytics.rules import Rule
from elastic_inference.core.jobanalytics import MAX_EVENTS, analyse
from elastic_inference.core.result import Detection, Result

GATE = Rule("gate", "line", ((0.5, 0.0), (0.5, 1.0)), ("person",))
CARS = Rule("cars", "line", ((0.5, 0.0), (0.5, 1.0)), ("car",))
LEFT = Rule("left", "zone", ((0.0, 0.0), (0.5, 0.0), (0.5, 1.0), (0.0, 1.0)))


def walk(frames: range, start: float, speed: float, label: str = "person") -> list[bytes]:
    """One object walking across the frame (x moves by ``speed`` a frame), as stored results
    of job frames: the seq is the frame number, ts_capture the extraction time (unrelated)."""
    return [Result("j0123456789ab", "people", n, 1e9 + 5 * n, 1e9, "m", "CPU", 768, 576,
                   (Detection(label, 0.9, (x - 0.03, 0.4, x + 0.03, 0.6)),)).encode()
            for n, x in ((n, start + speed * (n - frames.start)) for n in frames)]


def test_counts_are_under_rule_names_per_direction_and_label() -> None:
    results = walk(range(0, 30), 0.2, 0.02) + walk(range(40, 70), 0.8, -0.02)
    random.Random(1).shuffle(results)  # workers store them in any order
    found = analyse({"people": results}, [GATE, CARS, LEFT], fps=10.0)
    assert found.counts["gate"] == {"kind": "line", "a->b": 1, "b->a": 1,
                                    "labels": {"person": {"a->b": 1, "b->a": 1}}}
    assert found.counts["cars"] == {"kind": "line", "a->b": 0, "b->a": 0, "labels": {}}
    left = found.counts["left"]
    assert (left["enter"], left["leave"], left["dwell"], left["occupancy_end"]) == (2, 1, 0, 1)
    crossings = [e for e in found.events if e["kind"] == "cross"]
    # Frame time is frame number / fps, not when the frame was extracted.
    assert [(e["direction"], e["frame"], e["ts"]) for e in crossings] == [
        ("b->a", 16, 1.6), ("a->b", 56, 5.6)]  # on the line at 15 and 55: no side
    assert found.events == sorted(found.events, key=lambda e: e["frame"])
    assert found.events_total == len(found.events) == 5
    assert crossings[0]["box"] is not None and crossings[0]["type"] == "people"
    first, second = found.tracks[16]["people"][0], found.tracks[56]["people"][0]
    assert first["label"] == "person" and first["id"] != second["id"]
    assert json.loads(found.summary_json())["counts"] == found.counts


def test_events_are_bounded_and_invalid_results_skipped() -> None:
    # Many short walkers, each crossing once: more events than the answer keeps.
    results = [r for k in range(MAX_EVENTS + 10)
               for r in walk(range(10 * k, 10 * k + 8), 0.42, 0.02)]
    found = analyse({"people": [b"not json", *results]}, [GATE], fps=0)  # fps 0: assumed 25
    assert found.counts["gate"]["b->a"] == MAX_EVENTS + 10 == found.events_total
    assert len(found.events) == MAX_EVENTS and found.events[0]["ts"] == round(5 / 25, 3)
