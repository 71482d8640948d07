"""What ``ei track`` costs per result message: :func:`.speed.tracker_rate` on made-up scenes.

A scene is people walking back and forth across the frame at different heights (so they cross
a vertical line and enter and leave a zone), encoded as the result JSON workers publish; the
rate is messages per CPU second of one core through decode, reorder, tracker and counter.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..core.analytics.rules import Rule
from ..core.analytics.speed import tracker_rate
from ..core.result import Detection, Result

#: The issue's target: one core keeps up with this many result messages per second.
TARGET_RATE = 200.0
LINE = Rule("middle", "line", ((0.5, 0.0), (0.5, 1.0)))
ZONE = Rule("left", "zone", ((0.0, 0.0), (0.4, 0.0), (0.4, 1.0), (0.0, 1.0)))
#: (name, people per frame, rules); the first with rules is the one checked against the target.
SCENARIOS = (("4 people, a line", 4, (LINE,)),
             ("4 people, a line and a zone", 4, (LINE, ZONE)),
             ("20 people, a line and a zone", 20, (LINE, ZONE)))


@dataclass(frozen=True)
class TrackerFigure:
    scenario: str
    people: int
    rules: int
    rate: float  # messages per CPU second, one core


def scene(people: int, frames: int = 200) -> list[bytes]:
    """``frames`` results of ``people`` walkers, each on its own row, at its own pace (at most
    a quarter of a box width per frame, so the tracker follows every one of them)."""
    out = []
    for seq in range(frames):
        dets = []
        for p in range(people):
            period = 80 + 7 * p
            phase = (seq + 5 * p) % period
            x = 0.1 + 0.8 * (phase if phase < period / 2 else period - phase) / (period / 2)
            y = 0.25 + 0.7 * (p + 0.5) / people
            dets.append(Detection("person", 0.8, (x - 0.04, y - 0.2, x + 0.04, y)))
        out.append(Result("bench", "people", seq, seq / 10, seq / 10, "bench", "CPU", 768, 576,
                          tuple(dets)).encode())
    return out


def measure_tracker(seconds: float) -> list[TrackerFigure]:
    """Each scenario's rate, replayed for about ``seconds`` of CPU time."""
    return [TrackerFigure(name, people, len(rules),
                          tracker_rate(scene(people), rules, min_seconds=seconds))
            for name, people, rules in SCENARIOS]
