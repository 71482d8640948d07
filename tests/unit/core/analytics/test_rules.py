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


HOOK = "https://hooks.example.com/ei?team=7"


def test_dwell_and_sinks_are_parsed_and_kept_through_encode() -> None:
    sinks = [{"kind": "webhook", "url": HOOK}, {"kind": "mqtt", "topic": "site/cam1/door"}]
    rules = parse(zone(dwell_s=90, sinks=sinks), {**line(), "sinks": sinks[1:]})
    assert rules[0].dwell_s == 90.0 and [s.target for s in rules[0].sinks] == [
        HOOK, "site/cam1/door"]
    assert rules[0].to_json()["sinks"] == sinks and rules[0].to_json()["dwell_s"] == 90.0
    assert decode(encode(rules)) == rules
    assert "dwell_s" not in parse(zone())[0].to_json()  # optional fields only when set


@pytest.mark.parametrize("extra, problem", [
    ({"dwell_s": 0}, "dwell_s must be a number of seconds above 0"),
    ({"dwell_s": -5}, "dwell_s must be"),
    ({"dwell_s": 86401}, "at most 86400"),
    ({"dwell_s": "60"}, "dwell_s must be"),
    ({"dwell_s": True}, "dwell_s must be"),
    ({"dwell_s": 1e400}, "dwell_s must be"),
    ({"sinks": {"kind": "mqtt", "topic": "a"}}, "sinks must be a list of at most 4"),
    ({"sinks": [{"kind": "mqtt", "topic": f"t{n}"} for n in range(5)]}, "at most 4"),
    ({"sinks": [{"kind": "email", "to": "x@y"}]}, "sink 0 must be"),
    ({"sinks": ["https://x"]}, "sink 0 must be"),
    ({"sinks": [{"kind": "mqtt", "topic": "a", "qos": 2}]}, 'unknown field(s) "qos"'),
    ({"sinks": [{"kind": "webhook", "topic": "a"}]}, 'unknown field(s) "topic"'),
    ({"sinks": [{"kind": "webhook", "url": 7}]}, "url must be a string"),
    ({"sinks": [{"kind": "webhook", "url": "ftp://h/x"}]}, "http:// or https://"),
    ({"sinks": [{"kind": "webhook", "url": "https:///path"}]}, "http:// or https://"),
    ({"sinks": [{"kind": "webhook", "url": "https://h:0/"}]}, "http:// or https://"),
    ({"sinks": [{"kind": "webhook", "url": "https://h:99999/"}]}, "malformed"),
    ({"sinks": [{"kind": "webhook", "url": "https://u:pw@h/"}]}, "may not hold credentials"),
    ({"sinks": [{"kind": "webhook", "url": "https://h/a b"}]}, "spaces or control"),
    ({"sinks": [{"kind": "webhook", "url": "https://h/" + "a" * 2048}]}, "longer than 2048"),
    ({"sinks": [{"kind": "mqtt", "topic": ""}]}, "1 to 128 characters"),
    ({"sinks": [{"kind": "mqtt", "topic": "t" * 129}]}, "1 to 128 characters"),
    ({"sinks": [{"kind": "mqtt", "topic": "site/+/door"}]}, "no wildcard"),
    ({"sinks": [{"kind": "mqtt", "topic": "site/#"}]}, "no wildcard"),
    ({"sinks": [{"kind": "mqtt", "topic": "a\u0000b"}]}, "no NUL"),
    ({"sinks": [{"kind": "mqtt", "topic": "$SYS/x"}]}, "does not start with $"),
    ({"sinks": [{"kind": "mqtt", "topic": "a"}, {"kind": "mqtt", "topic": "a"}]},
     "listed twice"),
])
def test_bad_dwell_and_sinks_are_refused_naming_the_rule(extra: dict[str, Any],
                                                         problem: str) -> None:
    message = refused(line(), zone(**extra))
    assert message.startswith("rule 1 (door)") and problem in message, message
    assert "u:pw" not in message


def test_dwell_is_for_zones_only() -> None:
    assert "dwell_s is for zones only" in refused({**line(), "dwell_s": 5})


def test_webhook_urls_pass_the_allow_list_check_when_given() -> None:
    seen: list[str] = []

    def check(url: str) -> None:
        seen.append(url)
        if "internal" in url:
            raise InvalidMessage("webhook host 'internal' is not in EI_SOURCE_ALLOW")

    def rules(url: str) -> str:
        return json.dumps({"rules": [zone(sinks=[{"kind": "webhook", "url": url}])]})

    assert parse_rules(rules(HOOK), LABELS, check)[0].sinks[0].target == HOOK
    with pytest.raises(InvalidMessage, match=r"rule 0 \(door\): sink 0: webhook host"):
        parse_rules(rules("http://internal/x"), LABELS, check)
    assert seen == [HOOK, "http://internal/x"]
    assert decode(rules("http://internal/x"))[0].sinks  # a stored rule is read back unchecked
