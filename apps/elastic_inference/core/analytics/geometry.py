"""Plane geometry for zones and lines, in the normalised image plane (x right, y down).

Exact predicates on floats, no tolerance: a rule's points and a box's reference point are both
normalised to 0..1 of the frame, so an epsilon would only move the edge cases, not remove them.
On an edge counts as inside a zone (a track standing on a zone's border is in it), and a point
on a line is on neither side, so a crossing needs a strict change of side.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..result import Box

Point = tuple[float, float]


def reference_point(box: Box) -> Point:
    """The point of a box that zones and lines test: its bottom centre (the feet of a person,
    the wheels of a car), which stays on the ground plane a user draws rules on."""
    x1, _, x2, y2 = box
    return ((x1 + x2) / 2.0, y2)


def cross(a: Point, b: Point, p: Point) -> float:
    """The z of (b - a) x (p - a): < 0 when ``p`` is left of a->b as seen on the image (y down),
    > 0 when right, 0 on the line through a and b."""
    return (b[0] - a[0]) * (p[1] - a[1]) - (b[1] - a[1]) * (p[0] - a[0])


def side(a: Point, b: Point, p: Point) -> int:
    """-1 left of the directed line a->b as seen on the image, +1 right, 0 on it.

    Seen on the image means y grows downwards: for a line drawn left to right (a west of b),
    left is above it; for a line drawn top to bottom, left is the screen's right.
    """
    c = cross(a, b, p)
    return -1 if c < 0 else (1 if c > 0 else 0)


def _on_segment(a: Point, b: Point, p: Point) -> bool:
    """``p``, known collinear with a and b, lies within their bounding box (so on a-b)."""
    return (min(a[0], b[0]) <= p[0] <= max(a[0], b[0])
            and min(a[1], b[1]) <= p[1] <= max(a[1], b[1]))


def segments_intersect(p1: Point, p2: Point, q1: Point, q2: Point) -> bool:
    """Whether the closed segments p1-p2 and q1-q2 share a point (touching and collinear
    overlap included; collinear but apart is not)."""
    d1, d2 = side(q1, q2, p1), side(q1, q2, p2)
    d3, d4 = side(p1, p2, q1), side(p1, p2, q2)
    if d1 * d2 < 0 and d3 * d4 < 0:
        return True
    return ((d1 == 0 and _on_segment(q1, q2, p1)) or (d2 == 0 and _on_segment(q1, q2, p2))
            or (d3 == 0 and _on_segment(p1, p2, q1)) or (d4 == 0 and _on_segment(p1, p2, q2)))


def point_in_polygon(p: Point, polygon: Sequence[Point]) -> bool:
    """Whether ``p`` is inside the simple polygon or on its border (even-odd ray casting)."""
    n = len(polygon)
    inside = False
    for i in range(n):
        a, b = polygon[i], polygon[(i + 1) % n]
        if side(a, b, p) == 0 and _on_segment(a, b, p):
            return True
        if (a[1] > p[1]) != (b[1] > p[1]):
            x = a[0] + (p[1] - a[1]) * (b[0] - a[0]) / (b[1] - a[1])
            if p[0] < x:
                inside = not inside
    return inside

