from __future__ import annotations

import pytest

from elastic_inference.core import keys
from elastic_inference.core.errors import InvalidMessage


def test_key_names_follow_the_wire_contract() -> None:
    assert keys.queue("face") == "ei:queue:face"
    assert keys.queue_stats("face") == "ei:queue:face:stats"
    assert keys.out("cam.1") == "ei:out:cam.1"
    assert keys.results("cam_1") == "ei:results:cam_1"


@pytest.mark.parametrize("bad", ["", "a b", "x" * 65, "a/b", "a:b", "é", "cam\n"])
def test_stream_ids_that_could_escape_a_key_are_rejected(bad: str) -> None:
    with pytest.raises(InvalidMessage):
        keys.out(bad)


@pytest.mark.parametrize("bad", ["Face", "", "x" * 33, "a:b", "face\n"])
def test_bad_types_are_rejected(bad: str) -> None:
    with pytest.raises(InvalidMessage):
        keys.queue(bad)


def test_job_keys_are_traced_back_to_their_job_and_type() -> None:
    job = "j0123456789ab"
    for key in (keys.job(job), keys.job_frames(job), keys.job_results(job, "car")):
        assert keys.job_of_key(key) == job
    for key in ("ei:jobs", "ei:jobs:pending", "ei:job:nope:frames", "ei:queue:face"):
        assert keys.job_of_key(key) is None
    for key in (keys.job_queue("car"), keys.job_queue_messages("car"),
                keys.job_queue_leases("car")):
        assert keys.job_queue_type(key) == "car"
    assert keys.job_queue_type("ei:jobs:pending") is None
    assert keys.job_queue_type("ei:jobq:Bad:msg") is None


def test_a_job_id_with_a_trailing_newline_is_refused() -> None:
    # ``$`` also matches before a final newline: the ids are checked with fullmatch.
    with pytest.raises(InvalidMessage):
        keys.job("j0123456789ab\n")
