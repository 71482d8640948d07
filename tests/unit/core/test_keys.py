from __future__ import annotations

import pytest
from redis.crc import key_slot

from elastic_inference.core import keys
from elastic_inference.core.errors import InvalidMessage


def test_key_names_follow_the_wire_contract() -> None:
    assert keys.queue("face") == "ei:queue:face"
    assert keys.queue_stats("face") == "ei:queue:{ei:queue:face}:stats"
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
    assert keys.job(job) == "ei:job:{j0123456789ab}"
    for key in ("ei:jobs", "ei:jobs:{pending}", "ei:job:{nope}:frames", "ei:queue:face",
                "ei:job:{j0123456789ab:frames", "ei:job:j0123456789ab}:frames"):
        assert keys.job_of_key(key) is None
    for key in (keys.job_queue("car"), keys.job_queue_messages("car"),
                keys.job_queue_leases("car")):
        assert keys.job_queue_type(key) == "car"
    assert keys.job_queue_type("ei:jobs:{pending}") is None
    assert keys.job_queue_type("ei:jobq:Bad:msg") is None


def test_a_job_id_with_a_trailing_newline_is_refused() -> None:
    # ``$`` also matches before a final newline: the ids are checked with fullmatch.
    with pytest.raises(InvalidMessage):
        keys.job("j0123456789ab\n")


def slots(*names: str) -> set[int]:
    """The Redis Cluster hash slots of ``names`` (redis-py's CRC16, as the server computes)."""
    return {key_slot(n.encode()) for n in names}


def test_keys_a_script_or_transaction_uses_together_share_a_hash_slot() -> None:
    """doc/scaling.md, "Redis Cluster": each group is one script's or transaction's keys."""
    job, event = "j0123456789ab", "1764670000123-0"
    groups = [
        (keys.queue("people"), keys.queue_stats("people")),
        (keys.job_queue("car"), keys.job_queue_messages("car"), keys.job_queue_leases("car")),
        (keys.jobs_pending(), keys.jobs_pending_messages(), keys.jobs_pending_leases()),
        (keys.job(job), keys.job_frames(job), keys.job_tracks(job),
         keys.job_results(job, "people"), keys.job_results(job, "car")),
        (keys.events(), keys.event_snapshots(), keys.event_snapshot(event)),
        (keys.auth_users(), keys.auth_user("ann"), keys.auth_tokens(), keys.auth_token("a" * 64),
         keys.auth_session("b" * 64), keys.auth_user_sessions("ann")),
    ]
    for group in groups:
        assert len(slots(*group)) == 1, group


def test_keys_used_apart_keep_their_own_slots() -> None:
    """No tag where no multi-key operation needs one: streams, jobs and types spread over the
    cluster, and the keys read from outside keep their names."""
    assert len(slots(*(keys.out(f"cam{i}") for i in range(20)))) == 20
    assert len(slots(*(keys.job(f"j{i:012x}") for i in range(20)))) == 20
    assert len(slots(*(keys.job_queue(t) for t in ("people", "car", "face")))) == 3
    assert slots(keys.queue("people")) != slots(keys.queue("car"))
    assert (keys.queue("people"), keys.events()) == ("ei:queue:people", "ei:events")
