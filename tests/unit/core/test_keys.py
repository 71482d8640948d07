from __future__ import annotations

import pytest

from elastic_inference.core import keys
from elastic_inference.core.errors import InvalidMessage


def test_key_names_follow_the_wire_contract() -> None:
    assert keys.queue("face") == "ei:queue:face"
    assert keys.queue_stats("face") == "ei:queue:face:stats"
    assert keys.out("cam.1") == "ei:out:cam.1"
    assert keys.results("cam_1") == "ei:results:cam_1"


@pytest.mark.parametrize("bad", ["", "a b", "x" * 65, "a/b", "a:b", "é"])
def test_stream_ids_that_could_escape_a_key_are_rejected(bad: str) -> None:
    with pytest.raises(InvalidMessage):
        keys.out(bad)


@pytest.mark.parametrize("bad", ["Face", "", "x" * 33, "a:b"])
def test_bad_types_are_rejected(bad: str) -> None:
    with pytest.raises(InvalidMessage):
        keys.queue(bad)
