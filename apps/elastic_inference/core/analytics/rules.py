"""Zones and lines drawn over a stream: what ``PUT /api/streams/{id}/rules`` takes and Redis keeps.

A rule is ``{"name": ..., "kind": "zone" | "line", "points": [[x, y], ...], "labels": [...]}``
with points normalised to 0..1 of the frame, so a rule survives a change of resolution. A zone
is a simple polygon (3 or more points, no self-intersection); a line is two distinct points,
and its crossings are counted per direction. ``labels`` filters what the rule counts (empty:
every label). A zone may set ``dwell_s`` (a ``dwell`` event once per stay beyond it), and
any rule ``sinks``: webhooks and MQTT topics its events are delivered to.

A rules document is ``{"rules": [rule, ...]}``: an object, so the API's answer (which adds the
version) and later fields can share its shape. :func:`parse_rules` checks everything that
needs no Redis; the labels a rule may name come from the caller (core does not import the
engine, which knows the models' labels). doc/analytics.md ("Rules") has the limits.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any, Literal, cast
from urllib.parse import urlsplit

from ..errors import InvalidMessage
from ..redact import redact_url
from ..text import has_control_characters, load_json_body, shown
from .geometry import Point, polygon_area, self_intersection

RuleKind = Literal["zone", "line"]
SinkKind = Literal["webhook", "mqtt"]
#: Checks a webhook URL against the outbound allow-list (the gateway passes
#: ``SourcePolicy.check``); raises InvalidMessage saying why it is refused.
UrlCheck = Callable[[str], object]

KINDS: tuple[RuleKind, ...] = ("zone", "line")
RULE_FIELDS = ("name", "kind", "points", "labels", "dwell_s", "sinks")
#: A sink's field naming where it delivers, by kind.
SINK_TARGETS: dict[SinkKind, str] = {"webhook": "url", "mqtt": "topic"}
#: Rules per stream: each costs the tracker a test per track and frame.
MAX_RULES = 32
#: Points per zone: enough for any outline drawn by hand, small enough for the O(n²) check.
MAX_POINTS = 32
#: Labels per rule (the largest built-in label set, COCO, has 80).
MAX_LABELS = 80
#: A rule's name: shown in metrics labels and URLs, so a safe, short charset.
NAME_RE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
#: Smallest zone area accepted (fraction of the frame): below it the polygon is degenerate.
MIN_AREA = 1e-9
#: Longest dwell limit: a day (the event retention is a week by default).
MAX_DWELL_S = 86400.0
#: Sinks per rule: each event is delivered once per sink, off the tracking path.
MAX_SINKS = 4
MAX_URL_CHARS = 2048
MAX_TOPIC_CHARS = 128


@dataclass(frozen=True)
class Sink:
    """Where a rule's events go: a webhook URL or an MQTT topic (``target``)."""

    kind: SinkKind
    target: str

    def to_json(self) -> dict[str, str]:
        return {"kind": self.kind, SINK_TARGETS[self.kind]: self.target}


@dataclass(frozen=True)
class Rule:
    """One zone or line of one stream (validated by the parser, never by the constructor)."""

    name: str
    kind: RuleKind
    points: tuple[Point, ...]
    labels: tuple[str, ...] = ()
    dwell_s: float | None = None
    sinks: tuple[Sink, ...] = ()

    def to_json(self) -> dict[str, Any]:
        """The rule as the API and Redis spell it (optional fields only when set)."""
        out: dict[str, Any] = {"name": self.name, "kind": self.kind,
                               "points": [list(p) for p in self.points],
                               "labels": list(self.labels)}
        if self.dwell_s is not None:
            out["dwell_s"] = self.dwell_s
        if self.sinks:
            out["sinks"] = [s.to_json() for s in self.sinks]
        return out


def _point(raw: Any, where: str) -> Point:
    if (not isinstance(raw, list) or len(raw) != 2
            or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in raw)):
        raise InvalidMessage(f"{where} must be [x, y] with two numbers, not {shown(raw)}")
    # Compared before float(): an integer of 400 digits would overflow it; NaN fails both.
    if not all(0 <= v <= 1 for v in raw):
        raise InvalidMessage(f"{where} {shown(raw)} is outside the frame: x and y must be in "
                             f"0..1 (fractions of its width and height)")
    return float(raw[0]), float(raw[1])


def _geometry(kind: RuleKind, points: tuple[Point, ...], where: str) -> None:
    if kind == "line":
        if len(points) != 2:
            raise InvalidMessage(f"{where}: a line has exactly 2 points, not {len(points)}")
        if points[0] == points[1]:
            raise InvalidMessage(f"{where}: the line has zero length (both points are "
                                 f"{list(points[0])})")
        return
    if not 3 <= len(points) <= MAX_POINTS:
        raise InvalidMessage(f"{where}: a zone has 3 to {MAX_POINTS} points, not {len(points)}")
    crossing = self_intersection(points)
    if crossing is not None:
        i, j = crossing
        raise InvalidMessage(f"{where}: the zone is not a simple polygon: edge {i}-"
                             f"{(i + 1) % len(points)} meets edge {j}-{(j + 1) % len(points)} "
                             f"(points counted from 0)")
    if polygon_area(points) < MIN_AREA:
        raise InvalidMessage(f"{where}: the zone has no area (its points are collinear)")


def _dwell(raw: Any, kind: RuleKind, where: str) -> float | None:
    if raw is None:
        return None
    if kind != "zone":
        raise InvalidMessage(f"{where}: dwell_s is for zones only (a line has no stay)")
    if (not isinstance(raw, (int, float)) or isinstance(raw, bool)
            or not 0 < raw <= MAX_DWELL_S):  # compared before float(), as points are
        raise InvalidMessage(f"{where}: dwell_s must be a number of seconds above 0 and at "
                             f"most {MAX_DWELL_S:g}, not {shown(raw)}")
    return float(raw)


def _webhook_url(url: str, where: str, check_url: UrlCheck | None) -> str:
    if len(url) > MAX_URL_CHARS:
        raise InvalidMessage(f"{where}: the URL is longer than {MAX_URL_CHARS} characters")
    if has_control_characters(url) or any(c.isspace() for c in url):
        raise InvalidMessage(f"{where}: the URL holds spaces or control characters")
    try:
        parts = urlsplit(url)
        port_ok = parts.port is None or parts.port > 0
    except ValueError as exc:
        raise InvalidMessage(f"{where}: the URL is malformed: {exc}") from exc
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname or not port_ok:
        raise InvalidMessage(f"{where}: a webhook URL is http:// or https:// with a host, "
                             f"not {shown(redact_url(url))}")
    if "@" in parts.netloc:
        # Stored in Redis and shown by GET: no credentials; receivers check X-EI-Signature.
        raise InvalidMessage(f"{where}: a webhook URL may not hold credentials (user@); the "
                             f"receiver checks the X-EI-Signature header instead")
    if check_url is not None:
        try:
            check_url(url)
        except InvalidMessage as exc:
            raise InvalidMessage(f"{where}: {exc}") from exc
    return url


def _topic(topic: str, where: str) -> str:
    if not 1 <= len(topic) <= MAX_TOPIC_CHARS:
        raise InvalidMessage(f"{where}: an MQTT topic has 1 to {MAX_TOPIC_CHARS} characters")
    if "+" in topic or "#" in topic or "\0" in topic or topic.startswith("$"):
        raise InvalidMessage(f"{where}: an MQTT topic to publish to has no wildcard (+ #), no "
                             f"NUL and does not start with $ (broker topics), not "
                             f"{shown(topic)}")
    return topic


def _sinks(raw: Any, where: str, check_url: UrlCheck | None) -> tuple[Sink, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list) or len(raw) > MAX_SINKS:
        raise InvalidMessage(f"{where}: sinks must be a list of at most {MAX_SINKS} objects, "
                             f"not {shown(raw)}")
    sinks = []
    for n, item in enumerate(raw):
        at = f"{where}: sink {n}"
        kind = item.get("kind") if isinstance(item, dict) else None
        if kind not in SINK_TARGETS:
            raise InvalidMessage(f'{at} must be {{"kind": "webhook", "url": ...}} or '
                                 f'{{"kind": "mqtt", "topic": ...}}, not {shown(item)}')
        field = SINK_TARGETS[cast(SinkKind, kind)]
        unknown = sorted(set(item) - {"kind", field})
        if unknown:
            raise InvalidMessage(f"{at}: unknown field(s) {', '.join(map(shown, unknown[:5]))}"
                                 f": a {kind} sink has kind and {field}")
        target = item.get(field)
        if not isinstance(target, str):
            raise InvalidMessage(f"{at}: {field} must be a string, not {shown(target)}")
        sinks.append(Sink(cast(SinkKind, kind), _webhook_url(target, at, check_url)
                          if kind == "webhook" else _topic(target, at)))
    if len(set(sinks)) != len(sinks):
        raise InvalidMessage(f"{where}: a sink is listed twice")
    return tuple(sinks)


def parse_rule(raw: Any, index: int, known_labels: Collection[str] | None,
               check_url: UrlCheck | None = None) -> Rule:
    """Rule number ``index`` of a document; InvalidMessage naming it and the problem.
    ``known_labels`` None: any label name (a stored rule, read back); ``check_url`` None:
    webhook URLs are checked for form only (a stored rule: the allow-list is checked again
    at each delivery)."""
    where = f"rule {index}"
    if not isinstance(raw, dict):
        raise InvalidMessage(f"{where} must be an object with {', '.join(RULE_FIELDS)}, "
                             f"not {shown(raw)}")
    name = raw.get("name")
    if not isinstance(name, str) or not NAME_RE.fullmatch(name):
        raise InvalidMessage(f"{where}: name must be 1 to 64 of A-Z a-z 0-9 _ . -, "
                             f"not {shown(name)}")
    where = f"rule {index} ({name})"
    unknown = sorted(set(raw) - set(RULE_FIELDS))
    if unknown:
        raise InvalidMessage(f"{where}: unknown field(s) {', '.join(map(shown, unknown[:5]))}: "
                             f"a rule has {', '.join(RULE_FIELDS)}")
    kind = raw.get("kind")
    if kind not in KINDS:
        raise InvalidMessage(f"{where}: kind must be \"zone\" or \"line\", not {shown(kind)}")
    points = raw.get("points")
    if not isinstance(points, list):
        raise InvalidMessage(f"{where}: points must be a list of [x, y], not {shown(points)}")
    if len(points) > MAX_POINTS:
        raise InvalidMessage(f"{where}: too many points ({len(points)}; at most {MAX_POINTS})")
    parsed = tuple(_point(p, f"{where}: point {n}") for n, p in enumerate(points))
    _geometry(cast(RuleKind, kind), parsed, where)
    labels = raw.get("labels", [])
    if not isinstance(labels, list) or not all(isinstance(v, str) for v in labels):
        raise InvalidMessage(f"{where}: labels must be a list of label names, not "
                             f"{shown(labels)}")
    if len(labels) > MAX_LABELS or len(set(labels)) != len(labels):
        raise InvalidMessage(f"{where}: labels must be at most {MAX_LABELS} names, each once")
    strange = [v for v in labels if known_labels is not None and v not in known_labels]
    if strange:
        raise InvalidMessage(f"{where}: unknown label(s) {', '.join(map(shown, strange[:5]))}: "
                             f"name labels the models output, spelled as they spell them "
                             f"(such as \"person\", \"car\", \"face\")")
    dwell = _dwell(raw.get("dwell_s"), cast(RuleKind, kind), where)
    return Rule(name, cast(RuleKind, kind), parsed, tuple(labels), dwell,
                _sinks(raw.get("sinks"), where, check_url))


def rules_from_json(data: Any, known_labels: Collection[str] | None,
                    check_url: UrlCheck | None = None) -> tuple[Rule, ...]:
    """The rules of a parsed document ``{"rules": [...]}``; InvalidMessage on any problem."""
    if not isinstance(data, dict) or not isinstance(data.get("rules"), list):
        raise InvalidMessage('the rules document must be an object {"rules": [...]}, not '
                             f"{shown(data)}")
    unknown = sorted(set(data) - {"rules"})
    if unknown:
        raise InvalidMessage(f"unknown field(s) {', '.join(map(shown, unknown[:5]))}: the "
                             f'document has only "rules"')
    items = data["rules"]
    if len(items) > MAX_RULES:
        raise InvalidMessage(f"too many rules ({len(items)}; at most {MAX_RULES} per stream)")
    rules = tuple(parse_rule(raw, n, known_labels, check_url) for n, raw in enumerate(items))
    seen: set[str] = set()
    for rule in rules:
        if rule.name in seen:
            raise InvalidMessage(f"two rules are named {rule.name!r}: names are unique per stream")
        seen.add(rule.name)
    return rules


def parse_rules(body: bytes | str, known_labels: Collection[str],
                check_url: UrlCheck | None = None) -> tuple[Rule, ...]:
    """The rules of a ``PUT /api/streams/{id}/rules`` body; InvalidMessage naming the problem.
    ``check_url`` may resolve host names: call it off the event loop."""
    return rules_from_json(load_json_body(body), known_labels, check_url)


def encode(rules: tuple[Rule, ...]) -> str:
    """The stored form: the document as compact JSON."""
    return json.dumps({"rules": [r.to_json() for r in rules]}, separators=(",", ":"))


def decode(text: bytes | str) -> tuple[Rule, ...]:
    """Rules as :func:`encode` wrote them, checked again (InvalidMessage if the stored value
    is damaged) but for labels: a label a later model set lacks is kept, not refused."""
    return rules_from_json(load_json_body(text), None)
