"""``ei up --autoscale``: workers follow the load up, and back to the minimum when it stops."""

from __future__ import annotations

import re
import signal
import time
from pathlib import Path

import pytest
import redis

from elastic_inference.bench.frames import video_jpegs
from elastic_inference.bench.harness import Producer
from elastic_inference.core.registry import WorkerRegistry
from tests.processes import Service, wait_for
from tests.redis_server import free_port

pytestmark = pytest.mark.e2e

SCALE_DOWN_WINDOW = 8.0
SIZE = (1280, 720)


def test_workers_scale_up_under_load_and_back_down_when_it_stops(
        redis_url: str, redis_client: redis.Redis, model_dir: Path, sample_dir: Path) -> None:
    jpegs = video_jpegs(sample_dir / "vtest.avi", 8, SIZE)
    up = Service(["up", "--redis-url", redis_url, "--autoscale", "--workers", "people",
                  "--sample-streams", "false", "--min-workers", "1", "--max-workers", "3",
                  "--scale-interval", "1", "--scale-down-window", str(SCALE_DOWN_WINDOW),
                  "--port", str(free_port()), "--ws-port", str(free_port()),
                  "--model-dir", str(model_dir)])
    workers = WorkerRegistry(redis_client, "people")
    # Far above one SSD worker's capacity on this machine (about 150 frames/s alone).
    load = Producer(redis_client, "people", ["load-a", "load-b"], 400.0, jpegs, SIZE,
                    seconds=180.0)
    try:
        wait_for(lambda: workers.count() == 1, 60, "the first worker to register")
        load.start()
        wait_for(lambda: workers.count() >= 2, 60, "a second worker under load")
        log = up.output()
        scaled = re.findall(r"autoscale people: (\d+) -> (\d+) workers", log)
        assert scaled and int(scaled[0][1]) > int(scaled[0][0]) == 1, log[-3000:]
        peak = workers.count()

        load.stop.set()
        load.join(timeout=5)
        stopped = time.monotonic()
        wait_for(lambda: workers.count() == 1, SCALE_DOWN_WINDOW + 40,
                 "the pool to fall back to one worker after the load stopped")
        took = time.monotonic() - stopped
        # Not before the stabilization window: the window remembers the high recommendation.
        assert took >= SCALE_DOWN_WINDOW - 1, (took, up.output()[-3000:])
        assert peak >= 2
        assert up.alive(), up.output()[-3000:]
    finally:
        load.stop.set()
        code = up.stop(timeout=40, sig=signal.SIGINT)
    assert code == 0, up.output()[-3000:]
