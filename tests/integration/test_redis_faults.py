"""Redis refusing writes never wedges a service (issue 11, point 3), on a real redis-server.

Redis is driven to ``maxmemory`` (noeviction) the way production gets there: a big key pushes
the used memory over the limit, every write that may grow memory is refused with OOM, and
deleting the key frees it. Services must back off and retry through that, end when a thread of
theirs dies, fail ``/healthz`` when wedged, and end within the drain timeout on SIGTERM.
"""

from __future__ import annotations

import signal
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest
import redis

from elastic_inference.core import keys
from elastic_inference.core.frame import Frame
from elastic_inference.core.jobrequest import JobRequest
from elastic_inference.core.jobs import JobStore
from elastic_inference.core.queue import FrameQueue
from elastic_inference.core.registry import WorkerRegistry
from elastic_inference.core.runtime import DRAIN_TIMEOUT, EXIT_THREAD_DIED, ServiceRuntime
from elastic_inference.core.settings import InferSettings
from elastic_inference.services.infer import InferWorker
from tests.fakes import StuckDetector
from tests.processes import Service, wait_for
from tests.redis_server import RedisServer

pytestmark = pytest.mark.integration

#: How long Redis stays full in the acceptance test (the issue's figure).
FULL_FOR = 30.0
#: Every worker must publish again this soon after memory is freed.
RECOVERY_LIMIT = 10.0


@pytest.fixture
def own_redis() -> Iterator[RedisServer]:
    server = RedisServer().start()
    yield server
    server.stop()


class Ballast:
    """Puts Redis over ``maxmemory`` with one big key, and frees it again."""

    def __init__(self, client: redis.Redis, size: int = 32 << 20, over: int = 8 << 20) -> None:
        self.client = client
        self.size = size
        self.over = over

    def fill(self) -> None:
        """Store the key, then set the limit ``over`` bytes below the memory used: every write
        that may grow memory is refused until more than that is freed, which the little the
        services free meanwhile (a few popped frames) does not do."""
        chunk = b"\0" * (1 << 20)
        for _ in range(self.size // len(chunk)):
            self.client.append("ballast", chunk)
        used = int(self.client.info("memory")["used_memory"])
        self.client.config_set("maxmemory-policy", "noeviction")
        self.client.config_set("maxmemory", used - self.over)
        with pytest.raises(redis.exceptions.OutOfMemoryError):
            self.client.set("probe", "x")

    def free(self) -> None:
        """Delete the key and lift the limit (the operator's fix), so what the services
        stored meanwhile cannot fill it again."""
        self.client.delete("ballast")
        self.client.config_set("maxmemory", 0)
        self.client.set("probe", "x")  # writes are accepted again


def newest_entry_ms(client: redis.Redis, stream: str) -> int:
    newest = client.xrevrange(keys.out(stream), count=1)
    return int(newest[0][0].split(b"-")[0]) if newest else 0


def healthz(port: int) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as err:
        return int(err.code)


def count_frames(video: Path, step: int) -> int:
    cap = cv2.VideoCapture(str(video))
    n = 0
    while cap.grab():
        n += 1
    cap.release()
    return len(range(0, n, step))


def test_a_full_redis_for_30_s_wedges_nothing_and_loses_no_job_frame(
        own_redis: RedisServer, model_dir: Path, sample_dir: Path) -> None:
    """The acceptance test: live streams and a job run while Redis is full for 30 s."""
    env = {"EI_REDIS_URL": own_redis.url}
    streams = {"mm": ("Megamind.avi", "face"), "vt": ("vtest.avi", "people")}
    services = [Service(["stream", "--source", str(sample_dir / video), "--stream-id", sid,
                         "--types", infer_type, "--fps", "5"], env)
                for sid, (video, infer_type) in streams.items()]
    workers = {t: Service(["infer", "--type", t, "--model-dir", str(model_dir)], env)
               for t in ("face", "people")}
    runner = Service(["analysis", "--media-dir", str(sample_dir)], env)
    services += [*workers.values(), runner]
    client = redis.Redis.from_url(own_redis.url)
    store = JobStore(client)
    ballast = Ballast(client)
    step = 3
    expected = count_frames(sample_dir / "vtest.avi", step)
    try:
        wait_for(lambda: all(client.xlen(keys.out(sid)) for sid in streams), 90,
                 "results of every stream")
        job = store.create(JobRequest("vtest.avi", ("face",), frame_step=step))
        wait_for(lambda: (store.get(job) or {}).get("frames_read", 0) > 0, 30,
                 "the job to start extracting")

        ballast.fill()
        filled_ms = int(time.time() * 1000)
        time.sleep(FULL_FOR)
        for s in services:
            assert s.alive(), f"{s.args[0]} exited while Redis was full:\n{s.output()[-3000:]}"
        for sid in streams:  # full indeed: nothing was published meanwhile
            assert newest_entry_ms(client, sid) < filled_ms + 1000, sid
        freed_ms = int(time.time() * 1000)
        ballast.free()
        freed = time.monotonic()

        recovered: dict[str, float] = {}
        while len(recovered) < len(streams) and time.monotonic() - freed < 30:
            for sid in streams:
                if sid not in recovered and newest_entry_ms(client, sid) > freed_ms:
                    recovered[sid] = time.monotonic() - freed
            time.sleep(0.1)
        print(f"\nworkers publishing again after freeing memory: {recovered} (s)")
        assert set(recovered) == set(streams), f"not publishing again: {recovered}"
        assert max(recovered.values()) <= RECOVERY_LIMIT, recovered

        wait_for(lambda: all(WorkerRegistry(client, t).ids() for t in workers), 10,
                 "both workers back in the registry")
        for s in workers.values():
            assert healthz(s.metrics_port) == 200
        try:
            rec = wait_for(lambda: (r := store.get(job)) and r["status"] == "done" and r, 120,
                           "the job to complete")
        except AssertionError as exc:
            raise AssertionError(f"{exc}: {store.get(job)}\n{runner.output()[-4000:]}\n"
                                 f"{workers['face'].output()[-4000:]}") from None
        assert rec["frames_total"] == expected and rec["frames_done"] == expected, rec
        assert rec["progress"] == {"face": {"done": expected, "total": expected}}, rec
        assert client.hlen(keys.job_frames(job)) == expected
        assert client.hlen(keys.job_results(job, "face")) == expected
        for s in services:
            assert s.alive(), f"{s.args[0]} exited:\n{s.output()[-3000:]}"
    finally:
        codes = {" ".join(s.args[:3]): s.stop() for s in services}
    logs = "\n".join(s.output() for s in services)
    assert "OutOfMemoryError" in logs and "reachable again" in logs
    assert "Traceback" not in logs, logs[-5000:]
    assert set(codes.values()) == {0}, codes


def test_sigterm_ends_a_worker_in_time_while_redis_refuses_writes(
        own_redis: RedisServer, model_dir: Path, sample_dir: Path) -> None:
    env = {"EI_REDIS_URL": own_redis.url}
    stream = Service(["stream", "--source", str(sample_dir / "Megamind.avi"), "--stream-id", "mm",
                      "--types", "face", "--fps", "10"], env)
    worker = Service(["infer", "--type", "face", "--model-dir", str(model_dir),
                      "--max-age", "0"], env)
    client = redis.Redis.from_url(own_redis.url)
    try:
        wait_for(lambda: client.xlen(keys.out("mm")) > 0, 90, "results")
        # Frames must be waiting when Redis fills up (the stream cannot push any then): the
        # worker is paused while they queue up.
        worker.proc.send_signal(signal.SIGSTOP)
        try:
            wait_for(lambda: client.llen(keys.queue("face")) >= 8, 30, "frames to queue up")
            Ballast(client).fill()
        finally:
            worker.proc.send_signal(signal.SIGCONT)
        wait_for(lambda: "retrying with backoff" in worker.output(), 30,
                 "the worker to meet the refusal")
        time.sleep(2)  # frames pile up in its hand-over queue
        sent = time.monotonic()
        code = worker.stop(timeout=60)
        took = time.monotonic() - sent
        print(f"\nworker stopped {took:.1f} s after SIGTERM with Redis full")
        assert took < DRAIN_TIMEOUT + 2, took
        assert code == 0, worker.output()[-3000:]
    finally:
        worker.stop()
        stream.stop()


def test_a_worker_thread_that_dies_ends_the_process_non_zero(
        redis_url: str, redis_client: redis.Redis, model_dir: Path) -> None:
    """A bug in the stats thread (here: its key holds the wrong type) ends the worker, so
    the supervisor restarts it, instead of leaving it serving without heartbeats."""
    worker = Service(["infer", "--type", "face", "--model-dir", str(model_dir)],
                     {"EI_REDIS_URL": redis_url})
    try:
        wait_for(lambda: WorkerRegistry(redis_client, "face").ids(), 60, "the worker to beat")
        redis_client.delete(keys.queue_stats("face"))
        redis_client.set(keys.queue_stats("face"), "not a hash")
        wait_for(lambda: not worker.alive(), 30, "the worker to exit")
    finally:
        code = worker.stop()
        redis_client.delete(keys.queue_stats("face"))
    out = worker.output()
    assert code == EXIT_THREAD_DIED, out[-3000:]
    assert "thread infer-stats died unexpectedly" in out and "WRONGTYPE" in out


def test_healthz_fails_while_a_worker_with_frames_waiting_makes_no_progress(
        redis_url: str, redis_client: redis.Redis) -> None:
    runtime = ServiceRuntime("infer-test")
    port = runtime.serve_health("127.0.0.1", 0)
    detector = StuckDetector()
    settings = InferSettings(redis_url=redis_url, type="face", stall_timeout=1.0, max_age=0)
    worker = InferWorker(settings, redis_client, detector, runtime,
                         worker_id="stuck-face")
    ok, jpeg = cv2.imencode(".jpg", np.full((64, 64, 3), 128, np.uint8))
    assert ok
    queue = FrameQueue(redis_client, "face", maxlen=100)
    thread = threading.Thread(target=worker.run, daemon=True)
    try:
        thread.start()
        wait_for(lambda: healthz(port) == 200 and runtime.ready.is_set(), 10, "a healthy start")
        time.sleep(2)  # idle longer than the stall limit: idle is not stalled
        assert healthz(port) == 200
        for seq in range(20):
            queue.push(Frame("cam", "face", seq, time.time(), 64, 64, jpeg.tobytes()).encode())
        assert detector.entered.wait(10)
        wait_for(lambda: healthz(port) == 503, 10, "/healthz to report the stall")
        detector.release.set()  # the device answers again: frames flow, health comes back
        wait_for(lambda: redis_client.xlen(keys.out("cam")) == 20, 10, "the frames published")
        wait_for(lambda: healthz(port) == 200, 10, "/healthz to recover")
    finally:
        detector.release.set()
        runtime.stop.set()
        thread.join(10)
        runtime.close()
    assert not thread.is_alive()
