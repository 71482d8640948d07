"""Lossless job queues (leases, expiry, redelivery) and job records against a real redis-server."""

from __future__ import annotations

import json
import time

import pytest
import redis

from elastic_inference.core import keys
from elastic_inference.core.errors import InvalidMessage
from elastic_inference.core.jobrequest import JobRequest
from elastic_inference.core.jobs import JobStore, job_message_id
from elastic_inference.core.leased import LeasedQueue

pytestmark = pytest.mark.integration


def test_messages_come_out_in_order_and_never_twice_while_leased(
        redis_client: redis.Redis) -> None:
    q = LeasedQueue.for_type(redis_client, "people")
    q.push([(f"m{i}", f"body{i}".encode()) for i in range(5)])
    first = q.lease(3, timeout=30)
    assert first == [(f"m{i}", f"body{i}".encode()) for i in range(3)]
    assert [m for m, _ in q.lease(10, timeout=30)] == ["m3", "m4"]
    assert q.lease(10, timeout=30) == [] and q.waiting() == 0
    q.ack(["m0", "m1", "m2", "m3", "m4"])
    assert redis_client.zcard(keys.job_queue_leases("people")) == 0
    assert redis_client.hlen(keys.job_queue_messages("people")) == 0


def test_an_expired_lease_is_redelivered_first_and_an_acked_one_never(
        redis_client: redis.Redis) -> None:
    q = LeasedQueue.for_type(redis_client, "face")
    q.push([("a", b"A"), ("b", b"B"), ("c", b"C")])
    taken = q.lease(2, timeout=0.3)  # a taker that will "die" holding a and b
    q.ack([taken[1][0]])  # ...after finishing b
    time.sleep(0.4)
    again = q.lease(5, timeout=30)
    assert [m for m, _ in again] == ["a", "c"]  # a is back at the head; b is gone for good


def test_extend_keeps_a_lease_alive_and_skips_acked_ones(redis_client: redis.Redis) -> None:
    q = LeasedQueue.for_type(redis_client, "car")
    q.push([("x", b"X"), ("y", b"Y")])
    q.lease(2, timeout=0.3)
    q.ack(["y"])
    assert q.extend(["x", "y"], timeout=30) == 1
    time.sleep(0.4)
    assert q.lease(5, timeout=30) == []  # x is still leased; y must not come back


def test_discard_forgets_one_jobs_messages_and_lease_skips_their_ids(
        redis_client: redis.Redis) -> None:
    q = LeasedQueue.for_type(redis_client, "people")
    q.push([(job_message_id("j000000000001", n), b"1") for n in range(3)]
           + [(job_message_id("j000000000002", 0), b"2")])
    assert q.discard(["j000000000001"]) == 3
    assert q.waiting() == 1  # the discarded ids are out of the list, not only their bodies
    assert q.lease(10, timeout=30) == [("j000000000002:0", b"2")]


def test_a_job_record_goes_from_queued_to_done_as_results_arrive(
        redis_client: redis.Redis) -> None:
    store = JobStore(redis_client)
    job = store.create(JobRequest("vtest.avi", ("people", "face"), frame_step=5, name="t"))
    assert keys.JOB_ID_RE.match(job)
    assert store.pending.lease(1, timeout=30) == [(job, job.encode())]
    rec = store.get(job)
    assert rec is not None and rec["status"] == "queued" and rec["frames_total"] is None
    assert store.update(job, status="processing", frames_total=2, frames_read=2)
    pipe = redis_client.pipeline()
    for n in (0, 5):
        store.store_result(job, "people", n, json.dumps({"seq": n}).encode(), pipe)
    store.store_result(job, "face", 0, b'{"seq": 0}', pipe)
    pipe.execute()
    rec = store.get(job)
    assert rec is not None and rec["status"] == "processing"
    assert rec["progress"] == {"people": {"done": 2, "total": 2},
                               "face": {"done": 1, "total": 2}}
    pipe = redis_client.pipeline()
    store.store_result(job, "face", 5, b'{"seq": 5}', pipe)
    store.store_result(job, "face", 5, b'{"seq": 5}', pipe)  # a redelivery overwrites
    pipe.execute()
    rec = store.get(job)
    assert rec is not None and rec["status"] == "done" and rec["frames_done"] == 2
    assert store.result_frames(job, ("people", "face")) == [0, 5]
    assert store.frame_results(job, 5, ("people", "face")) == {"people": {"seq": 5},
                                                                "face": {"seq": 5}}


def test_delete_removes_everything_and_updates_cannot_resurrect_it(
        redis_client: redis.Redis) -> None:
    store = JobStore(redis_client)
    job = store.create(JobRequest("a.avi", ("people",)))
    people = LeasedQueue.for_type(redis_client, "people")
    assert store.store_frame(job, 0, b"\xff\xd8jpeg", job_message_id(job, 0), [(people, b"m")])
    assert store.delete(job)
    assert store.get(job) is None and store.frame(job, 0) is None
    assert not store.update(job, status="extracting")
    assert not redis_client.exists(keys.job(job))
    assert LeasedQueue.for_type(redis_client, "people").lease(5, timeout=30) == []
    assert not store.delete(job)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"types": ()}, "at least one"),
    ({"types": ("People",)}, "invalid inference type"),
    ({"types": ("people", "people")}, "repeat"),
    ({"types": ("people",), "frame_step": 0}, "frame_step"),
    ({"types": ("people",), "frame_step": -5}, "frame_step"),
    ({"types": ("people",), "name": "x" * 121}, "name"),
])
def test_bad_requests_are_refused(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidMessage, match=message):
        JobRequest("a.avi", **kwargs)  # type: ignore[arg-type]
