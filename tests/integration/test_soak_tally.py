"""The soak's job frame accounting (tests/soak/churn.py) on a real redis-server."""

from __future__ import annotations

import json

import redis

from elastic_inference.core import keys
from elastic_inference.core.jobs import JobRequest, JobStore
from tests.soak.churn import JOB_TYPES, tally_job


def store(client: redis.Redis, job: str, infer_type: str, frames: dict[int, int],
          stream: str | None = None) -> None:
    """Results filed under frame ``k`` saying they are for frame ``frames[k]``."""
    client.hset(keys.job_results(job, infer_type), mapping={
        str(k): json.dumps({"stream": stream or job, "type": infer_type, "seq": seq})
        for k, seq in frames.items()})


def test_lost_and_duplicated_frames_are_counted_per_type(redis_client: redis.Redis) -> None:
    job = JobStore(redis_client).create(JobRequest("vtest.avi", JOB_TYPES, frame_step=10))
    every = {n: n for n in range(0, 95, 10)}  # a 95-frame video: frames 0, 10, ... 90
    store(redis_client, job, "people", every)
    store(redis_client, job, "car", {n: n for n in every if n not in (30, 90)})
    # A stray, a misfiled one and a missing one: a count alone would balance them out.
    store(redis_client, job, "face", {**{n: n for n in every if n != 20}, 95: 95, 40: 50})
    tally = tally_job(redis_client, job, frame_step=10, video=95)
    assert tally.expected == 10 and tally.status == "queued"
    assert tally.lost == {"people": 0, "car": 2, "face": 1}
    assert tally.duplicated == {"people": 0, "car": 0, "face": 2}


def test_a_result_of_another_job_counts_as_duplicated(redis_client: redis.Redis) -> None:
    job = JobStore(redis_client).create(JobRequest("vtest.avi", ("people",), frame_step=5))
    store(redis_client, job, "people", {0: 0, 5: 5}, stream="jother")
    tally = tally_job(redis_client, job, frame_step=5, video=10)
    assert tally.lost["people"] == 0 and tally.duplicated["people"] == 2
    assert set(tally.lost) == {"people"}  # the job's own types


def test_a_job_that_vanished_lost_every_frame(redis_client: redis.Redis) -> None:
    tally = tally_job(redis_client, "j0123456789ab", frame_step=10, video=95)
    assert tally.status == "missing" and tally.lost == {t: 10 for t in JOB_TYPES}
