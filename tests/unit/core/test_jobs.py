"""Analysis-job requests without Redis: the body's shape, field types and known types."""

from __future__ import annotations

import json

import pytest

from elastic_inference.core.analytics.rules import Rule
from elastic_inference.core.errors import InvalidMessage
from elastic_inference.core.jobrequest import JobRequest, check_known_types, parse_job_request
from tests.analysis_api import job_body

LABELS = {"person", "car"}


def test_job_request_defaults_and_fields() -> None:
    assert parse_job_request(job_body(), LABELS) == JobRequest("v.avi", ("people",), 1, "")
    assert parse_job_request(job_body(types=["people", "face"], frame_step=5, name="lobby"),
                             LABELS) == JobRequest("v.avi", ("people", "face"), 5, "lobby")
    url = "rtsp://cam.example.com/1"
    assert parse_job_request(job_body(source=url), LABELS).source == url  # by resolve_source
    line = {"name": "gate", "kind": "line", "points": [[0.5, 0], [0.5, 1]], "labels": ["person"]}
    assert parse_job_request(job_body(rules=[line]), LABELS).rules == (
        Rule("gate", "line", ((0.5, 0.0), (0.5, 1.0)), ("person",)),)


@pytest.mark.parametrize(("body", "message"), [
    (b"{", "not valid JSON"),
    (b"\xff", "not valid JSON"),
    (b"[" * 10000 + b"]" * 10000, "not valid JSON"),  # too deep to decode
    (b"null", "must be a JSON object"),
    (b'["v.avi"]', "must be a JSON object"),
    (job_body(fps=5, z=1), "unknown field(s) \"fps\", \"z\": a job has source, types, "
                           "frame_step, name, rules"),
    (json.dumps({str(i): i for i in range(7)}).encode(), "\"4\", ..."),
    (json.dumps({"types": ["people"]}).encode(), "source is required"),
    (job_body(source=None), "source is required"),
    (job_body(source=""), "source is required"),
    (job_body(source=["v.avi"]), 'source must be a string, not ["v.avi"]'),
    (json.dumps({"source": "v.avi"}).encode(), "types must be a non-empty list"),
    (job_body(types="people"), 'not "people"'),
    (job_body(types=[]), "types must be a non-empty list"),
    (job_body(types=[["people"]]), "types must be a non-empty list"),
    (job_body(types=["no way"]), "invalid inference type 'no way'"),
    (job_body(types=["face", "face"]), "inference types repeat"),
    (job_body(frame_step=True), "frame_step must be an integer >= 1"),
    (job_body(frame_step=2.0), "not 2.0"),
    (job_body(frame_step="2"), "frame_step must be an integer >= 1"),
    (job_body(frame_step=0), "frame_step must be an integer in 1..10000"),
    (job_body(frame_step=10**30), "frame_step must be an integer in 1..10000"),
    (job_body(name=5), "name must be a string"),
    (job_body(name="n" * 121), "name must be at most 120"),
    (job_body(name="bell\x07"), "printable"),
    # Rules: the stream rules' parser and its messages, with the caller's labels.
    (job_body(rules={"rules": []}), "rules must be a list of zones and lines"),
    (job_body(rules=[{"name": "a", "kind": "line", "points": [[0.3, 0.3], [0.3, 0.3]]}]),
     "rule 0 (a): the line has zero length"),
    (job_body(rules=[{"name": "a", "kind": "line", "points": [[0, 0], [1, 1]],
                      "labels": ["unicorn"]}]), 'rule 0 (a): unknown label(s) "unicorn"'),
    (job_body(rules=[{"name": "z", "kind": "zone",
                      "points": [[0, 0], [1, 1], [1, 0], [0, 1]]}]), "not a simple polygon"),
    (job_body(rules=[{"name": "z", "kind": "zone", "points": [[0, 0]] * 33}]),
     "too many points"),
])
def test_bad_job_requests_name_the_problem(body: bytes, message: str) -> None:
    with pytest.raises(InvalidMessage) as info:
        parse_job_request(body, LABELS)
    assert message in str(info.value)


def test_long_values_are_shortened_in_messages() -> None:
    with pytest.raises(InvalidMessage) as info:
        parse_job_request(job_body(types="x" * 1000), LABELS)
    assert len(str(info.value)) < 150 and '..."' not in str(info.value)


def test_known_types() -> None:
    check_known_types(["people", "plates"], {"people", "plates", "face"})
    with pytest.raises(InvalidMessage, match=r"unknown inference type\(s\) 'plates': known types "
                                             r"are face, people$"):
        check_known_types(["people", "plates"], {"people", "face"})
