"""The analysis runner in process against a real redis-server: frame cap, failures, deletion."""

from __future__ import annotations

from pathlib import Path

import pytest
import redis

from elastic_inference.core import keys
from elastic_inference.core.jobrequest import JobRequest
from elastic_inference.core.jobs import JobStore
from elastic_inference.core.leased import LeasedQueue
from elastic_inference.core.runtime import ServiceRuntime
from elastic_inference.core.settings import AnalysisSettings
from elastic_inference.services.analysis import AnalysisRunner

pytestmark = pytest.mark.integration


def run_jobs(redis_url: str, media: Path, jobs: int, **settings: object) -> AnalysisRunner:
    runner = AnalysisRunner(AnalysisSettings(redis_url=redis_url, media_dir=media,
                                             max_jobs=jobs, **settings),  # type: ignore[arg-type]
                            redis.Redis.from_url(redis_url), ServiceRuntime("analysis-test"))
    assert runner.run() == 0
    return runner


def test_a_long_video_is_cut_at_the_frame_cap_and_says_so(
        redis_url: str, redis_client: redis.Redis, sample_dir: Path) -> None:
    store = JobStore(redis_client)
    job = store.create(JobRequest("vtest.avi", ("people", "face"), frame_step=5))
    run_jobs(redis_url, sample_dir, 1, max_job_frames=3)
    rec = store.get(job)
    assert rec is not None and rec["status"] == "processing"
    assert rec["frames_total"] == 3 and rec["truncated"] is True
    for t in ("people", "face"):
        assert [m for m, _ in LeasedQueue.for_type(redis_client, t).lease(10, 30)] == [
            f"{job}:0", f"{job}:5", f"{job}:10"]
    assert sorted(int(k) for k in redis_client.hkeys(keys.job_frames(job))) == [0, 5, 10]


def test_an_unreadable_source_fails_the_job_with_a_reason(
        redis_url: str, redis_client: redis.Redis, tmp_path: Path) -> None:
    (tmp_path / "broken.avi").write_bytes(b"not a video at all")
    store = JobStore(redis_client)
    broken = store.create(JobRequest("broken.avi", ("people",)))
    gone = store.create(JobRequest("vanished.avi", ("people",)))
    run_jobs(redis_url, tmp_path, 2)
    for job, reason in ((broken, "cannot open the source"), (gone, "is not a file")):
        rec = store.get(job)
        assert rec is not None and rec["status"] == "failed" and reason in rec["error"], rec
    assert LeasedQueue.for_type(redis_client, "people").waiting() == 0


def test_a_job_deleted_before_it_runs_is_skipped(
        redis_url: str, redis_client: redis.Redis, sample_dir: Path) -> None:
    store = JobStore(redis_client)
    doomed = store.create(JobRequest("vtest.avi", ("people",), frame_step=100))
    kept = store.create(JobRequest("vtest.avi", ("people",), frame_step=100))
    store.delete(doomed)
    run_jobs(redis_url, sample_dir, 1)
    assert store.get(doomed) is None and not redis_client.exists(keys.job_frames(doomed))
    rec = store.get(kept)
    assert rec is not None and rec["frames_total"] == 8 and rec["truncated"] is False
