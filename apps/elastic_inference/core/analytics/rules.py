"""Zones and lines drawn over a stream: what ``PUT /api/streams/{id}/rules`` takes and Redis keeps.

A rule is ``{"name": ..., "kind": "zone" | "line", "points": [[x, y], ...], "labels": [...]}``
with points normalised to 0..1 of the frame, so a rule survives a change of resolution. A zone
is a simple polygon (3 or more points, no self-intersection); a line is two distinct points,
and its crossings are counted per direction. ``labels`` filters what the rule counts (empty:
every label).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Point = tuple[float, float]
RuleKind = Literal["zone", "line"]


@dataclass(frozen=True)
class Rule:
    """One zone or line of one stream (validated by the parser, never by the constructor)."""

    name: str
    kind: RuleKind
    points: tuple[Point, ...]
    labels: tuple[str, ...] = ()
