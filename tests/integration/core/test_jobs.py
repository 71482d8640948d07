"""Lossless job queues (leases, expiry, redelivery) and job records against a real redis-server."""

from __future__ import annotations

import json
import time

import pytest
import redis

from elastic_inference.core import keys
from elastic_inference.core.errors import InvalidMessage, StorageFull
from elastic_inference.core.jobrequest import JobRequest
from elastic_inference.core.jobs import JobStore, job_message_id
from elastic_inference.core.jobsweep import find_orphans, sweep_orphans
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
           + [(job_message_id("j000000000002", 0), b"2"), ("j000000000003:0", b"3")])
    q.ack(["j000000000003:0"])  # acknowledged while waiting (a lease that ran out): a dead id
    assert q.discard(["j000000000001"]) == 3
    assert q.waiting() == 1  # the discarded and dead ids are out of the list, not only bodies
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


# ----------------------------------------------------------------------- nothing left behind


def job_keys(client: redis.Redis, job_id: str) -> list[bytes]:
    """Every key whose name contains the job id (SCAN, as an operator would look)."""
    return sorted(client.scan_iter(match=f"*{job_id}*"))


def queued_ids(client: redis.Redis, infer_type: str) -> set[str]:
    """Every message id a type's job queue holds: waiting, leased or as a body."""
    found = {i.decode() for i in client.lrange(keys.job_queue(infer_type), 0, -1)}
    found |= {i.decode() for i in client.zrange(keys.job_queue_leases(infer_type), 0, -1)}
    return found | {i.decode() for i in client.hkeys(keys.job_queue_messages(infer_type))}


def test_late_frames_and_results_of_a_deleted_job_write_nothing(
        redis_client: redis.Redis) -> None:
    store = JobStore(redis_client)
    job = store.create(JobRequest("a.avi", ("people", "car")))
    people, car = (LeasedQueue.for_type(redis_client, t) for t in ("people", "car"))
    assert store.store_frame(job, 0, b"jpeg0", job_message_id(job, 0),
                             [(people, b"p0"), (car, b"c0")])
    assert people.lease(1, timeout=30) == [(job_message_id(job, 0), b"p0")]  # a worker has it
    assert store.delete(job)
    # The runner and the worker carry on, not knowing yet: nothing they write may stay.
    assert not store.store_frame(job, 1, b"jpeg1", job_message_id(job, 1),
                                 [(people, b"p1"), (car, b"c1")])
    pipe = redis_client.pipeline(transaction=False)
    store.store_result(job, "people", 0, b'{"seq": 0}', pipe)
    store.store_result(job, "car", 1, b'{"seq": 1}', pipe)
    assert pipe.execute() == [0, 0]
    people.ack([job_message_id(job, 0)])
    assert job_keys(redis_client, job) == []
    assert queued_ids(redis_client, "people") == queued_ids(redis_client, "car") == set()
    assert redis_client.zcard(keys.jobs()) == 0


def test_delete_takes_the_jobs_ids_out_of_the_queues_and_they_never_come_back(
        redis_client: redis.Redis) -> None:
    store = JobStore(redis_client)
    people = LeasedQueue.for_type(redis_client, "people")
    other = store.create(JobRequest("b.avi", ("people",)))
    assert store.store_frame(other, 0, b"x", job_message_id(other, 0), [(people, b"o0")])
    before = people.waiting()
    job = store.create(JobRequest("a.avi", ("people",)))
    for n in range(5):
        assert store.store_frame(job, n, b"y", job_message_id(job, n), [(people, b"j")])
    assert people.waiting() == before + 5
    # Two taken by a worker whose leases will run out: they must not come back either.
    assert [m for m, _ in people.lease(2, timeout=0.2)] == [job_message_id(other, 0),
                                                             job_message_id(job, 0)]
    assert people.waiting() == before + 5 - 2
    assert store.delete(job)
    assert people.waiting() == 0  # the other job's frame is out on lease
    assert queued_ids(redis_client, "people") == {job_message_id(other, 0)}
    time.sleep(0.3)
    assert people.lease(10, timeout=30) == [(job_message_id(other, 0), b"o0")]
    assert people.release([job_message_id(job, 0), job_message_id(other, 0)]) == 1
    assert people.waiting() == before  # only the other job's frame went back
    assert job_keys(redis_client, job) == []


def test_each_job_counts_its_stored_frame_bytes_and_new_jobs_are_refused_beyond_the_share(
        redis_client: redis.Redis) -> None:
    store = JobStore(redis_client)
    people = LeasedQueue.for_type(redis_client, "people")
    job = store.create(JobRequest("a.avi", ("people",)))
    for n in range(3):
        assert store.store_frame(job, n, b"x" * 1000, job_message_id(job, n), [(people, b"m")])
    assert store.store_frame(job, 0, b"x" * 400, job_message_id(job, 0), [(people, b"m")])
    assert store.frame_bytes() == 2400  # frame 0 stored again (a re-run) counts once
    other = store.create(JobRequest("b.avi", ("people",)))
    assert store.store_frame(other, 0, b"y" * 600, job_message_id(other, 0), [])
    assert store.frame_bytes() == 3000
    limit = 64 << 20
    old = redis_client.config_get("maxmemory")["maxmemory"]
    redis_client.config_set("maxmemory", limit)
    try:
        store.check_room(3001 / limit)
        store.check_room(0)  # never refuses
        with pytest.raises(StorageFull) as info:
            store.check_room(2999 / limit)
        assert "EI_JOB_MEMORY_SHARE" in str(info.value) and "64 MB" in str(info.value)
        store.delete(job)
        store.check_room(2999 / limit)  # deleting a job frees its share at once
    finally:
        redis_client.config_set("maxmemory", old)


def test_sweeping_removes_what_a_vanished_job_left_and_nothing_of_a_live_one(
        redis_client: redis.Redis) -> None:
    store = JobStore(redis_client)
    people = LeasedQueue.for_type(redis_client, "people")
    live = store.create(JobRequest("a.avi", ("people",)))
    dead = store.create(JobRequest("b.avi", ("people",)))
    for job in (live, dead):
        for n in range(2):
            assert store.store_frame(job, n, b"f", job_message_id(job, n), [(people, b"m")])
        pipe = redis_client.pipeline()
        store.store_result(job, "people", 0, b"{}", pipe)
        pipe.execute()
    people.lease(1, timeout=30)  # live:0 out on lease
    stray = "jffffffffffff"  # frames of a job never indexed at all
    redis_client.hset(keys.job_frames(stray), "0", b"f")
    redis_client.delete(keys.job(dead))  # its record vanished, everything else stayed
    before = {k: redis_client.type(k) for k in redis_client.scan_iter(match=f"*{live}*")}

    found = find_orphans(redis_client)
    assert found.keys == sorted([keys.job_frames(dead), keys.job_results(dead, "people"),
                                 keys.job_frames(stray)])
    assert found.indexed == [dead]
    assert found.queued == {keys.job_queue("people"): {dead}, keys.jobs_pending(): {dead}}
    assert found.jobs() == {dead, stray}
    assert job_keys(redis_client, dead)  # looking changes nothing

    swept = sweep_orphans(redis_client)
    assert swept.messages == 3  # dead:0 and dead:1 for people, dead in the pending queue
    assert job_keys(redis_client, dead) == job_keys(redis_client, stray) == []
    assert queued_ids(redis_client, "people") == {job_message_id(live, 0),
                                                  job_message_id(live, 1)}
    assert people.waiting() == 1
    assert [m for m, _ in store.pending.lease(10, timeout=30)] == [live]
    assert {k: redis_client.type(k) for k in redis_client.scan_iter(match=f"*{live}*")} == before
    assert find_orphans(redis_client).jobs() == set()
