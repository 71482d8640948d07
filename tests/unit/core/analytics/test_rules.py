"""Rules documents: every validation rule refuses its bad case with a message naming the rule
and the problem; good documents survive encode/decode unchanged."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest

from elastic_inference.core.analytics.geometry import (
    polygon_area,
    segments_intersect,
    self_intersection,
)
from elastic_inference.core.analytics.rules import (
    MAX_POINTS,
    MAX_RULES,
    Rule,
    decode,
    encode,
    parse_rules,
)
from elastic_inference.core.errors import InvalidMessage

LABELS = frozenset({"person", "car", "face"})
SQUARE = [[0.1, 0.1], [0.9, 0.1], [0.9, 0.9], [0.1, 0.9]]


def zone(name: Any = "door", points: Any = None, **extra: Any) -> dict[str, Any]:
    return {"name": name, "kind": "zone", "points": SQUARE if points is None else points,
            "labels": ["person"], **extra}


def line(name: str = "gate", points: Any = None) -> dict[str, Any]:
    return {"name": name, "kind": "line",
            "points": [[0.5, 0.0], [0.5, 1.0]] if points is None else points, "labels": []}


def parse(*rules: Any) -> tuple[Rule, ...]:
    return parse_rules(json.dumps({"rules": list(rules)}), LABELS)


def refused(*rules: Any) -> str:
    with pytest.raises(InvalidMessage) as err:
        parse(*rules)
    return str(err.value)


def test_a_zone_and_a_line_are_parsed_into_rules() -> None:
    rules = parse(zone(), line())
    assert rules == (
        Rule("door", "zone", ((0.1, 0.1), (0.9, 0.1), (0.9, 0.9), (0.1, 0.9)), ("person",)),
        Rule("gate", "line", ((0.5, 0.0), (0.5, 1.0)), ()))


def test_encode_then_decode_gives_the_same_rules() -> None:
    rules = parse(zone(), line(), zone("lot", [[0, 0], [1, 0], [0.5, 1]]))
    text = encode(rules)
    assert decode(text) == rules
    assert decode(text.encode()) == rules
    assert json.loads(text) == {"rules": [r.to_json() for r in rules]}


def test_an_empty_document_clears_the_rules() -> None:
    assert parse() == ()


def test_a_self_intersecting_polygon_is_refused() -> None:
    bowtie = [[0.1, 0.1], [0.9, 0.9], [0.9, 0.1], [0.1, 0.9]]
    message = refused(zone("bowtie", bowtie))
    assert "rule 0 (bowtie)" in message and "not a simple polygon" in message


def test_a_zone_that_doubles_back_or_repeats_a_point_is_refused() -> None:
    assert "not a simple polygon" in refused(zone(points=[[0.1, 0.1], [0.5, 0.1], [0.3, 0.1],
                                                          [0.3, 0.5]]))
    assert "not a simple polygon" in refused(zone(points=[[0.1, 0.1], [0.5, 0.1], [0.5, 0.1],
                                                          [0.3, 0.5]]))


def test_a_zone_without_area_is_refused() -> None:
    message = refused(zone(points=[[0.1, 0.1], [0.5, 0.5], [0.9, 0.9]]))
    assert "rule 0 (door)" in message


def test_a_line_of_zero_length_is_refused() -> None:
    message = refused(zone(), line("still", [[0.3, 0.3], [0.3, 0.3]]))
    assert "rule 1 (still)" in message and "zero length" in message


def test_a_line_needs_exactly_two_points() -> None:
    assert "exactly 2 points" in refused(line(points=[[0, 0], [1, 1], [0, 1]]))
    assert "exactly 2 points" in refused(line(points=[[0, 0]]))


def test_an_unknown_label_is_refused() -> None:
    message = refused(zone(labels=["persn"]))
    assert "rule 0 (door)" in message and '"persn"' in message and "unknown label" in message


def test_too_many_points_are_refused() -> None:
    ring = [[0.5 + 0.4 * c, 0.5 + 0.4 * s] for c, s in _circle(MAX_POINTS + 1)]
    message = refused(zone("round", ring))
    assert "rule 0 (round)" in message and "too many points" in message
    assert parse(zone("round", ring[:MAX_POINTS]))[0].points[0] == (0.9, 0.5)


def _circle(n: int) -> list[tuple[float, float]]:
    return [(math.cos(2 * math.pi * k / n), math.sin(2 * math.pi * k / n)) for k in range(n)]


def test_too_few_points_for_a_zone_are_refused() -> None:
    assert "3 to" in refused(zone(points=[[0, 0], [1, 1]]))


def test_too_many_rules_are_refused() -> None:
    many = [line(f"l{n}") for n in range(MAX_RULES + 1)]
    assert "too many rules" in refused(*many)
    assert len(parse(*many[:MAX_RULES])) == MAX_RULES


@pytest.mark.parametrize("point", [[1.5, 0.5], [-0.1, 0.5], [0.5, 1e309], [0.5, "0.2"],
                                   [0.5], [0.5, 0.5, 0.5], [True, 0.5], "0.5,0.5", None])
def test_points_must_be_two_finite_numbers_in_the_frame(point: Any) -> None:
    message = refused(line(points=[[0.0, 0.0], point]))
    assert "rule 0 (gate): point 1" in message


@pytest.mark.parametrize("x", ["NaN", "Infinity", "-Infinity", "1" + "0" * 400])
def test_a_point_may_not_be_nan_infinite_or_huge(x: str) -> None:
    body = '{"rules": [{"name": "g", "kind": "line", "points": [[0, 0], [X, 1]]}]}'.replace("X", x)
    with pytest.raises(InvalidMessage, match="outside the frame"):
        parse_rules(body, LABELS)


def test_names_are_unique_and_safe() -> None:
    assert "named 'door'" in refused(zone(), zone())
    for bad in ["", "a b", "x" * 65, "é", "a/b", 7, None]:
        assert "name must be" in refused(zone(bad)), bad


@pytest.mark.parametrize("rule, problem", [
    (zone(colour="red"), "unknown field(s) \"colour\""),
    ({"name": "x", "kind": "circle", "points": SQUARE}, "kind must be"),
    ({"name": "x", "points": SQUARE}, "kind must be"),
    ({"name": "x", "kind": "zone", "points": "0,0 1,1"}, "points must be a list"),
    (zone(labels="person"), "labels must be a list"),
    (zone(labels=["person", "person"]), "each once"),
    (zone(labels=[3]), "labels must be a list"),
    ("door", "must be an object"),
])
def test_wrong_fields_and_types_are_refused(rule: Any, problem: str) -> None:
    assert problem in refused(rule)


@pytest.mark.parametrize("body, problem", [
    (b"[]", "must be an object"),
    (b'{"rules": {}}', "must be an object"),
    (b'{"rules": [], "version": 3}', "unknown field(s)"),
    (b"{not json", "not valid JSON"),
    (b'{"rules": [{"name": "\\ud800"}]}', "lone surrogate"),
])
def test_a_bad_document_is_refused(body: bytes, problem: str) -> None:
    with pytest.raises(InvalidMessage) as err:
        parse_rules(body, LABELS)
    assert problem in str(err.value)


def test_labels_are_checked_when_parsing_not_when_decoding() -> None:
    stored = encode((Rule("old", "line", ((0.0, 0.0), (1.0, 1.0)), ("bicycle",)),))
    assert decode(stored)[0].labels == ("bicycle",)
    with pytest.raises(InvalidMessage, match="unknown label"):
        parse_rules(stored, LABELS)


def test_decode_refuses_a_damaged_value() -> None:
    with pytest.raises(InvalidMessage):
        decode('{"rules": [{"name": "z", "kind": "zone", "points": [[0, 0]]}]}')


def test_geometry_helpers() -> None:
    assert segments_intersect((0, 0), (1, 1), (0, 1), (1, 0))
    assert segments_intersect((0, 0), (1, 0), (1, 0), (2, 1))  # touching at an end
    assert not segments_intersect((0, 0), (1, 0), (0, 1), (1, 1))
    assert not segments_intersect((0, 0), (1, 0), (2, 0), (3, 0))  # collinear, apart
    assert polygon_area([(0, 0), (1, 0), (1, 1), (0, 1)]) == 1
    assert polygon_area([(0, 0), (0, 1), (1, 1), (1, 0)]) == 1  # clockwise too
    assert self_intersection([(0, 0), (1, 0), (1, 1), (0, 1)]) is None
    assert self_intersection([(0, 0), (1, 1), (1, 0), (0, 1)]) == (0, 2)
    # A concave "C" is simple; its inner corner touching an outer edge is not.
    c_shape = [(0, 0), (3, 0), (3, 1), (1, 1), (1, 2), (3, 2), (3, 3), (0, 3)]
    assert self_intersection(c_shape) is None
    assert self_intersection([(0, 0), (4, 0), (4, 4), (2, 0.0), (0, 4)]) is not None
