"""Geometry of zones and lines: sides, intersections and polygons, edge cases first."""

from __future__ import annotations

from elastic_inference.core.analytics.geometry import (
    point_in_polygon,
    reference_point,
    segments_intersect,
    side,
)

SQUARE = ((0.2, 0.2), (0.6, 0.2), (0.6, 0.6), (0.2, 0.6))
# A U shape (concave): the notch between x 0.4 and 0.6 above y 0.5 is outside.
U = ((0.2, 0.2), (0.4, 0.2), (0.4, 0.5), (0.6, 0.5), (0.6, 0.2), (0.8, 0.2),
     (0.8, 0.8), (0.2, 0.8))


def test_reference_point_is_the_bottom_centre() -> None:
    assert reference_point((0.1, 0.2, 0.3, 0.9)) == (0.2, 0.9)


def test_side_is_as_seen_on_the_image_with_y_down() -> None:
    a, b = (0.0, 0.5), (1.0, 0.5)  # drawn left to right
    assert side(a, b, (0.5, 0.1)) == -1  # above on the screen: left
    assert side(a, b, (0.5, 0.9)) == 1
    assert side(a, b, (0.3, 0.5)) == 0
    assert side(a, b, (2.0, 0.5)) == 0  # on the line beyond the segment: still on it
    down = ((0.5, 0.0), (0.5, 1.0))  # drawn top to bottom: left is the screen's right
    assert side(*down, (0.9, 0.5)) == -1


def test_segments_crossing_touching_and_apart() -> None:
    assert segments_intersect((0, 0), (1, 1), (0, 1), (1, 0))
    assert segments_intersect((0, 0), (1, 0), (0.5, 0), (0.5, 1))  # T: an end on the other
    assert segments_intersect((0, 0), (1, 0), (1, 0), (2, 5))  # sharing an end point
    assert not segments_intersect((0, 0), (1, 0), (0.5, 0.1), (0.5, 1))
    assert not segments_intersect((0, 0), (1, 1), (2, 0), (3, -1))  # lines meet, segments not


def test_collinear_segments_overlap_or_not() -> None:
    assert segments_intersect((0, 0), (2, 0), (1, 0), (3, 0))
    assert segments_intersect((0, 0), (3, 0), (1, 0), (2, 0))  # one inside the other
    assert segments_intersect((0, 0), (1, 0), (1, 0), (2, 0))  # end to end
    assert not segments_intersect((0, 0), (1, 0), (1.5, 0), (2, 0))
    assert not segments_intersect((0, 0), (1, 1), (2, 2), (3, 3))


def test_point_in_polygon_inside_outside_and_on_the_border() -> None:
    assert point_in_polygon((0.4, 0.4), SQUARE)
    assert not point_in_polygon((0.7, 0.4), SQUARE)
    assert point_in_polygon((0.6, 0.4), SQUARE)  # on an edge
    assert point_in_polygon((0.2, 0.2), SQUARE)  # on a vertex
    assert point_in_polygon((0.4, 0.2), SQUARE)  # on the top edge (horizontal)
    assert not point_in_polygon((0.1, 0.2), SQUARE)  # on the top edge's line, outside
    assert not point_in_polygon((0.7, 0.6), SQUARE)  # level with a vertex, outside


def test_point_in_a_concave_polygon() -> None:
    assert not point_in_polygon((0.5, 0.3), U)  # in the notch
    assert point_in_polygon((0.3, 0.3), U)
    assert point_in_polygon((0.5, 0.7), U)
    assert point_in_polygon((0.5, 0.5), U)  # on the notch's floor
    assert not point_in_polygon((0.9, 0.5), U)
    assert point_in_polygon((0.7, 0.5), U)  # level with the notch's floor, in the right arm
