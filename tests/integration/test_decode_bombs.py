"""Decode bombs: JPEGs declaring huge sizes are refused before anything decodes them.

A 631-byte JPEG declaring 32767x32767 once took a worker to 6.3 GB. Here a real ``ei infer``
process on a real redis-server gets such bombs in its live and job queues, counts them
``invalid``, stays small, and goes on to publish the next good frame.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import redis
from skimage import data

from elastic_inference.core import keys
from elastic_inference.core.broker import OutputBroker
from elastic_inference.core.frame import Frame
from elastic_inference.core.jobrequest import JobRequest
from elastic_inference.core.jobs import JobStore
from elastic_inference.core.leased import LeasedQueue
from elastic_inference.core.queue import FrameQueue
from elastic_inference.core.result import decode_result
from elastic_inference.core.runtime import ServiceRuntime
from elastic_inference.core.settings import AnalysisSettings
from elastic_inference.services.analysis import AnalysisRunner
from tests.jpegs import declaring
from tests.processes import Service, http, wait_for

pytestmark = pytest.mark.integration

MAX_RSS_MB = 500


def peak_rss_mb(pid: int) -> float:
    """The process' high-water mark of resident memory (VmHWM), in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM in /proc status")


def test_jpeg_bombs_are_invalid_and_the_worker_stays_small(redis_url: str,
                                                           model_dir: Path) -> None:
    client = redis.Redis.from_url(redis_url)
    live = FrameQueue(client, "face", maxlen=100)
    jobs = LeasedQueue.for_type(client, "face")
    worker = Service(["infer", "--type", "face", "--model-dir", str(model_dir), "--max-age", "0"],
                     env={"EI_REDIS_URL": redis_url})
    try:
        wait_for(lambda: not worker.alive()
                 or http(f"http://127.0.0.1:{worker.metrics_port}/readyz")[0] == 200,
                 120, "the worker to be ready")
        assert worker.alive(), worker.output()
        before = peak_rss_mb(worker.proc.pid)
        bomb = declaring(32767, 32767)
        assert len(bomb) < 1000
        now = time.time()
        live.push(Frame("bomb", "face", 1, now, 1, 1, bomb).encode())  # the reported one
        live.push(Frame("bomb", "face", 2, now, 16384, 16384,  # honest w/h, over the cap
                        declaring(16384, 16384)).encode())
        jobs.push([("jbomb:0", Frame("jbomb", "face", 0, now, 1, 1, bomb).encode())])
        wait_for(lambda: live.stats().drops["invalid"] == 3, 60, "3 frames counted invalid")
        _, buf = cv2.imencode(".jpg", cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR))
        live.push(Frame("astro", "face", 7, time.time(), 512, 512, buf.tobytes()).encode())
        entries = wait_for(lambda: OutputBroker(client, 32, 3600).latest("astro"), 60,
                           "the good frame's result")
        assert decode_result(entries[0].result).seq == 7
        assert worker.alive()
        peak = peak_rss_mb(worker.proc.pid)
        assert peak < MAX_RSS_MB, f"peak RSS {peak:.0f} MB (before the bombs {before:.0f} MB)"
        assert not client.exists(keys.out("bomb"), keys.out("jbomb"))
        assert client.hlen(keys.job_queue_messages("face")) == 0  # the bad job frame is acked
        log = worker.output()
        assert "32767x32767 but the message says 1x1" in log
        assert "exceeds the 33177600 pixel limit" in log
        text = http(f"http://127.0.0.1:{worker.metrics_port}/metrics")[2].decode()
        assert 'ei_frames_dropped_total{device="CPU",model="blazeface",reason="invalid",' \
               'type="face"} 3.0' in text
    finally:
        assert worker.stop() == 0


def run_job(redis_url: str, media: Path, source: str, **settings: object) -> dict[str, Any]:
    """Run one analysis job on ``source`` with an in-process runner; the job's record."""
    client = redis.Redis.from_url(redis_url)
    store = JobStore(client)
    job = store.create(JobRequest(source, ("people",)))
    runner = AnalysisRunner(AnalysisSettings(redis_url=redis_url, media_dir=media, max_jobs=1,
                                             **settings),  # type: ignore[arg-type]
                            client, ServiceRuntime("analysis-test"))
    assert runner.run() == 0
    record = store.get(job)
    assert record is not None
    return record


def test_a_jpeg_bomb_source_fails_its_job_before_any_decoding(
        redis_url: str, redis_client: redis.Redis, tmp_path: Path) -> None:
    (tmp_path / "bomb.jpg").write_bytes(declaring(32767, 32767))
    record = run_job(redis_url, tmp_path, "bomb.jpg")
    assert record["status"] == "failed", record
    assert "JPEG of 32767x32767 exceeds the 33177600 pixel limit" in record["error"]
    assert LeasedQueue.for_type(redis_client, "people").waiting() == 0
    cv2.imwrite(str(tmp_path / "still.jpg"), np.zeros((48, 64, 3), np.uint8))
    record = run_job(redis_url, tmp_path, "still.jpg")  # a real still image is analysed
    assert record["status"] == "processing" and record["frames_total"] == 1, record


def test_a_video_over_the_pixel_cap_fails_its_job(redis_url: str, redis_client: redis.Redis,
                                                  sample_dir: Path) -> None:
    record = run_job(redis_url, sample_dir, "vtest.avi", max_pixels=100_000)
    assert record["status"] == "failed", record
    assert "the source of 768x576 exceeds the 100000 pixel limit" in record["error"]
    assert LeasedQueue.for_type(redis_client, "people").waiting() == 0

