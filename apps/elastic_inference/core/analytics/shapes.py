"""Plane geometry that rule validation needs: is a polygon simple, has it an area.

Validation only (``geometry.py`` holds what counting needs). Touching and collinear overlap
count as meeting: a zone must be clearly simple, since counting decides inside/outside by it.
"""

from __future__ import annotations

from collections.abc import Sequence

Point = tuple[float, float]


def cross(o: Point, a: Point, b: Point) -> float:
    """Twice the signed area of triangle o-a-b: > 0 counter-clockwise, 0 collinear."""
    return (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0])


def _on_segment(p: Point, a: Point, b: Point) -> bool:
    """``p``, known collinear with a-b, lies within the segment's bounding box."""
    return (min(a[0], b[0]) <= p[0] <= max(a[0], b[0])
            and min(a[1], b[1]) <= p[1] <= max(a[1], b[1]))


def segments_intersect(a: Point, b: Point, c: Point, d: Point) -> bool:
    """Segments a-b and c-d share at least one point (touching and overlapping count)."""
    d1, d2 = cross(c, d, a), cross(c, d, b)
    d3, d4 = cross(a, b, c), cross(a, b, d)
    if ((d1 > 0 > d2) or (d1 < 0 < d2)) and ((d3 > 0 > d4) or (d3 < 0 < d4)):
        return True
    return ((d1 == 0 and _on_segment(a, c, d)) or (d2 == 0 and _on_segment(b, c, d))
            or (d3 == 0 and _on_segment(c, a, b)) or (d4 == 0 and _on_segment(d, a, b)))


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
    their vertex.
    """
    n = len(points)
    edges = [(points[i], points[(i + 1) % n]) for i in range(n)]
    for i in range(n):
        for j in range(i + 1, n):
            a, b = edges[i]
            c, d = edges[j]
            if j == i + 1 or (i == 0 and j == n - 1):
                # Neighbours share one vertex; they intersect illegally only if they overlap,
                # i.e. the far end of one lies on the other.
                shared, far_i, far_j = (b, a, d) if j == i + 1 else (a, b, c)
                if ((cross(shared, far_i, far_j) == 0 and _on_segment(far_j, shared, far_i))
                        or (cross(shared, far_j, far_i) == 0
                            and _on_segment(far_i, shared, far_j))):
                    return i, j
                continue
            if segments_intersect(a, b, c, d):
                return i, j
    return None
