"""Plane geometry for zones and lines, in the normalised image plane (x right, y down).

Exact predicates on floats, no tolerance: a rule's points and a box's reference point are both
normalised to 0..1 of the frame, so an epsilon would only move the edge cases, not remove them.
On an edge counts as inside a zone (a track standing on a zone's border is in it), and a point
on a line is on neither side, so a crossing needs a strict change of side. Rule validation uses
the same predicates (:func:`self_intersection`, :func:`polygon_area`), so a zone accepted as
simple is simple by the test that counting applies.
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



def polygon_area(points: Sequence[Point]) -> float:
    """Unsigned area of the closed polygon (shoelace formula)."""
    n = len(points)
    twice = sum(points[i][0] * points[(i + 1) % n][1] - points[(i + 1) % n][0] * points[i][1]
                for i in range(n))
    return abs(twice) / 2


def self_intersection(points: Sequence[Point]) -> tuple[int, int] | None:
    """The first pair of edges (indices of their first points) of the closed polygon that
    meet anywhere but at the vertex two neighbours share, or None if the polygon is simple.

    O(n²) over at most a few dozen points; a repeated point or an edge that doubles back
    counts as a crossing, since neighbours that are collinear and overlap share more than
    their vertex. Touching counts as meeting: a zone must be clearly simple, since counting
    decides inside/outside by it.
    """
    n = len(points)
    edges = [(points[i], points[(i + 1) % n]) for i in range(n)]
    for i in range(n):
        for j in range(i + 1, n):
            a, b = edges[i]
            c, d = edges[j]
            if j == i + 1 or (i == 0 and j == n - 1):
                # Neighbours share one vertex; they meet illegally only if they overlap,
                # i.e. the far end of one lies on the other.
                shared, far_i, far_j = (b, a, d) if j == i + 1 else (a, b, c)
                if side(shared, far_i, far_j) == 0 and (_on_segment(shared, far_i, far_j)
                                                         or _on_segment(shared, far_j, far_i)):
                    return i, j
                continue
            if segments_intersect(a, b, c, d):
                return i, j
    return None
