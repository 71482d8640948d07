"""Job requests with text nothing could store (lone surrogates) or paths no file can have."""

from __future__ import annotations

from pathlib import Path

import pytest

from elastic_inference.core.errors import InvalidMessage
from elastic_inference.core.jobrequest import parse_job_request, resolve_source

LABELS = {"person"}


@pytest.mark.parametrize("body", [
    b'{"source": "\\ud800", "types": ["people"]}',
    b'{"source": "a.avi", "types": ["people"], "name": "x\\udfff"}',
    b'{"source": "a.avi", "types": ["\\ud83d"]}',
    b'{"\\ud800": 1}',
])
def test_lone_surrogates_are_invalid(body: bytes) -> None:
    with pytest.raises(InvalidMessage, match="lone surrogate"):
        parse_job_request(body, LABELS)


def test_a_surrogate_pair_is_text() -> None:
    assert parse_job_request(b'{"source": "a.avi", "types": ["people"], '
                             b'"name": "\\ud83d\\ude00"}', LABELS).name == "\U0001F600"


@pytest.mark.parametrize(("source", "reason"), [
    ("\ud800.avi", "not a usable path"), ("a" * 300, "not a usable path"),
    ("x\x00.avi", "control characters"), ("../etc/passwd", "outside"),
    ("http://h:99999/x", "with a host"), ("http://[::1/x", "with a host"),
    ("rtsp://admin:pa/ss@cam/live", "with a host"), ("http://cam/x?mail=a@b", "percent-encode"),
])
def test_unusable_sources_are_invalid(source: str, reason: str, tmp_path: Path) -> None:
    with pytest.raises(InvalidMessage, match=reason):
        resolve_source(source, tmp_path)
