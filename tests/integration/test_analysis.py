"""Analysis jobs end to end: a real runner and real workers, every N-th frame, nothing lost."""

from __future__ import annotations

import signal
import time
from pathlib import Path
from typing import Any

import pytest
import redis

from elastic_inference.core import keys
from elastic_inference.core.jobs import JobRequest, JobStore
from tests.processes import Service, wait_for

pytestmark = pytest.mark.integration

VTEST_FRAMES = 795
LEASE = "3"  # seconds: short, so a killed worker's frames come back quickly


def start_runner(redis_url: str, sample_dir: Path) -> Service:
    return Service(["analysis", "--media-dir", str(sample_dir), "--lease-timeout", LEASE],
                   env={"EI_REDIS_URL": redis_url})


def start_worker(redis_url: str, model_dir: Path, infer_type: str = "people") -> Service:
    return Service(["infer", "--type", infer_type, "--model-dir", str(model_dir),
                    "--lease-timeout", LEASE], env={"EI_REDIS_URL": redis_url})


def job_done(store: JobStore, job: str) -> dict[str, Any] | None:
    rec = store.get(job)
    assert rec is not None and rec["status"] != "failed", rec
    return rec if rec["status"] == "done" else None


def test_every_fifth_frame_of_vtest_gets_exactly_one_result_per_type(
        redis_url: str, redis_client: redis.Redis, model_dir: Path, sample_dir: Path) -> None:
    services = [start_runner(redis_url, sample_dir), start_worker(redis_url, model_dir),
                start_worker(redis_url, model_dir, "face")]
    try:
        store = JobStore(redis_client)
        job = store.create(JobRequest("vtest.avi", ("people", "face"), frame_step=5))
        rec = wait_for(lambda: job_done(store, job), 120, "the job to finish")
        expected = list(range(0, VTEST_FRAMES, 5))
        assert rec["frames_total"] == len(expected) == 159
        assert rec["progress"] == {t: {"done": 159, "total": 159} for t in ("people", "face")}
        assert store.result_frames(job, ("people",)) == expected
        assert store.result_frames(job, ("face",)) == expected
        results = store.frame_results(job, 100, ("people", "face"))
        assert results["people"]["seq"] == 100 and results["people"]["stream"] == job
        assert any(d["label"] == "Person" for d in results["people"]["detections"])
        frame = store.frame(job, 100)
        assert frame is not None and frame.startswith(b"\xff\xd8")
        assert all(s.alive() for s in services), [s.output()[-2000:] for s in services]
    finally:
        for s in services:
            s.stop()


def test_a_worker_killed_halfway_loses_no_frame(
        redis_url: str, redis_client: redis.Redis, model_dir: Path, sample_dir: Path) -> None:
    runner = start_runner(redis_url, sample_dir)
    doomed = start_worker(redis_url, model_dir)
    survivor = start_worker(redis_url, model_dir)
    try:
        store = JobStore(redis_client)
        wait_for(lambda: "compiled" in doomed.output() and "compiled" in survivor.output(), 60,
                 "both workers to load the model")
        job = store.create(JobRequest("vtest.avi", ("people",), frame_step=5))

        def halfway() -> bool:
            rec = store.get(job)
            return rec is not None and rec["progress"]["people"]["done"] >= 50

        wait_for(halfway, 90, "half of the job", interval=0.05)
        held = redis_client.zcard(keys.job_queue_leases("people"))
        doomed.stop(sig=signal.SIGKILL)  # holding leased frames, no chance to clean up
        assert held >= 1  # frames were out on lease, so some die with the worker
        killed_at = time.monotonic()
        rec = wait_for(lambda: job_done(store, job), 120, "the job to finish without the worker")
        assert rec["frames_total"] == 159 and rec["frames_done"] == 159
        assert store.result_frames(job, ("people",)) == list(range(0, VTEST_FRAMES, 5))
        assert time.monotonic() - killed_at < 90
        assert survivor.alive() and runner.alive()
    finally:
        for s in (runner, doomed, survivor):
            s.stop()
