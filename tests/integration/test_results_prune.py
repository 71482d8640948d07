"""``ei results prune``: old history entries and old jobs go, recent ones stay."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest
import redis

from elastic_inference.core import keys
from elastic_inference.core.jobrequest import JobRequest
from elastic_inference.core.jobs import JobStore, job_message_id
from elastic_inference.core.leased import LeasedQueue
from tests.conftest import REPO

pytestmark = pytest.mark.integration

DAY = 86400.0


def prune(redis_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "elastic_inference.cli", "results", "prune",
                           "--redis-url", redis_url, *args], capture_output=True, text=True,
                          cwd=REPO, timeout=60, check=False)


def test_prune_removes_only_what_is_older_than_the_cutoff(
        redis_url: str, redis_client: redis.Redis) -> None:
    now = time.time()
    for stream in ("cam1", "cam2"):
        for age_days in (10, 5, 0.5):
            ms = int((now - age_days * DAY) * 1000)
            redis_client.xadd(keys.results(stream), {"result": b"{}"}, id=f"{ms}-0")
    store = JobStore(redis_client)
    old_job = store.create(JobRequest("a.avi", ("people",)), now=now - 8 * DAY)
    new_job = store.create(JobRequest("b.avi", ("people",)), now=now - 1 * DAY)

    dry = prune(redis_url, "--older-than", "3", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "would delete 4 result entries of 2 stream(s) and 1 analysis job(s)" in dry.stdout
    assert redis_client.xlen(keys.results("cam1")) == 3 and store.get(old_job) is not None

    done = prune(redis_url, "--older-than", "3")
    assert done.returncode == 0, done.stderr
    assert "deleted 4 result entries of 2 stream(s) and 1 analysis job(s)" in done.stdout
    assert f"job {old_job}" in done.stdout
    for stream in ("cam1", "cam2"):
        assert redis_client.xlen(keys.results(stream)) == 1  # the 12-hour-old entry stays
    assert store.get(old_job) is None and store.get(new_job) is not None


@pytest.mark.parametrize("args", [[], ["--older-than", "0"], ["--older-than", "-2"],
                                  ["--older-than", "soon"]])
def test_a_missing_or_bad_age_is_refused(redis_url: str, args: list[str]) -> None:
    done = prune(redis_url, *args)
    assert done.returncode == 2, done.stdout
    assert "--older-than" in done.stderr or "EI_OLDER_THAN" in done.stderr


def test_prune_sweeps_what_deleted_jobs_left_behind(
        redis_url: str, redis_client: redis.Redis) -> None:
    store = JobStore(redis_client)
    people = LeasedQueue.for_type(redis_client, "people")
    live = store.create(JobRequest("a.avi", ("people",)))
    gone = store.create(JobRequest("b.avi", ("people",)))
    for job in (live, gone):
        assert store.store_frame(job, 0, b"f", job_message_id(job, 0), [(people, b"m")])
    redis_client.delete(keys.job(gone))  # e.g. an older release's DELETE racing the runner

    dry = prune(redis_url, "--older-than", "30", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert ("would delete what 1 deleted job(s) left behind: 1 key(s), 1 index entry(ies), "
            "messages in 2 queue(s)") in dry.stdout
    assert f"orphan key {keys.job_frames(gone)}" in dry.stdout
    assert redis_client.exists(keys.job_frames(gone)) and people.waiting() == 2

    done = prune(redis_url, "--older-than", "30")
    assert done.returncode == 0, done.stderr
    assert "deleted what 1 deleted job(s) left behind" in done.stdout
    assert "(2 message(s))" in done.stdout  # its frame in the people queue, its pending entry
    assert list(redis_client.scan_iter(match=f"*{gone}*")) == []
    assert people.waiting() == 1 and store.get(live) is not None
    assert store.frame(live, 0) == b"f"
