"""Analysis jobs leave nothing behind and cannot hog: real ``ei gateway``, ``ei analysis`` and
``ei infer`` processes on a real redis-server. A job deleted while it is extracted or processed
leaves no key and no queued id; a job on an endless source times out and frees the runner; new
jobs are refused while job frames fill Redis. (doc/analysis.md describes the limits.)
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from elastic_inference.core import keys
from elastic_inference.core.auth import Role
from elastic_inference.core.jobs import JobStore
from tests.analysis_api import Api
from tests.credentials import SECRET_ENV, bearer
from tests.mjpeg_camera import MjpegCamera
from tests.processes import Service, wait_for
from tests.redis_server import RedisServer, free_port

pytestmark = pytest.mark.integration

TYPES = ("people", "car")
LEASE = "3"  # seconds


def start_gateway(redis_url: str, sample_dir: Path, **env: str) -> tuple[Service, Api]:
    port = free_port()
    gateway = Service(["gateway", "--host", "127.0.0.1", "--port", str(port),
                       "--media-dir", str(sample_dir)],
                      env={"EI_REDIS_URL": redis_url, **SECRET_ENV, **env})
    api = Api(port, bearer(redis.Redis.from_url(redis_url), Role.OPERATOR))
    wait_for(lambda: not gateway.alive() or api.call("GET", "/readyz")[0] == 200, 30,
             "ei gateway to become ready")
    assert gateway.alive(), gateway.output()
    return gateway, api


@pytest.fixture
def services() -> Iterator[list[Service]]:
    """Processes a test starts (stopped afterwards); the first is the gateway."""
    started: list[Service] = []
    try:
        yield started
    finally:
        for s in started:
            s.stop()


def runner(redis_url: str, sample_dir: Path, *args: str) -> Service:
    return Service(["analysis", "--media-dir", str(sample_dir), "--lease-timeout", LEASE,
                    *args], env={"EI_REDIS_URL": redis_url})


def worker(redis_url: str, model_dir: Path, infer_type: str) -> Service:
    return Service(["infer", "--type", infer_type, "--model-dir", str(model_dir),
                    "--lease-timeout", LEASE], env={"EI_REDIS_URL": redis_url})


def gateway_runner_and_people_worker(services: list[Service], redis_url: str, sample_dir: Path,
                                     model_dir: Path, max_pending: int) -> Api:
    gateway, api = start_gateway(redis_url, sample_dir)
    services += [gateway, runner(redis_url, sample_dir, "--max-pending", str(max_pending)),
                 worker(redis_url, model_dir, "people")]
    return api


def job_keys(client: redis.Redis, job_id: str) -> list[bytes]:
    return sorted(client.scan_iter(match=f"*{job_id}*", count=1000))


def back_pressure(client: redis.Redis) -> dict[str, int]:
    """What a runner compares with EI_MAX_PENDING: each type's waiting job frames."""
    return {t: int(client.llen(keys.job_queue(t))) for t in TYPES}


def queued_of(client: redis.Redis, job_id: str) -> list[str]:
    """Ids of the job still held anywhere in a queue (waiting, leased or as a body)."""
    names: list[bytes] = []
    for t in TYPES:
        names += client.lrange(keys.job_queue(t), 0, -1)
        names += client.zrange(keys.job_queue_leases(t), 0, -1)
        names += client.hkeys(keys.job_queue_messages(t))
    names += client.lrange(keys.jobs_pending(), 0, -1)
    names += client.zrange(keys.jobs_pending_leases(), 0, -1)
    return sorted(n.decode() for n in names if n.decode().startswith(job_id))


def job(api: Api, job_id: str) -> dict[str, Any]:
    code, body = api.get(f"/api/analysis/{job_id}")
    assert code == 200, body
    return dict(body)


def deleted_leaves_nothing(api: Api, client: redis.Redis, job_id: str,
                           before: dict[str, int]) -> None:
    """DELETE, then 5 s later: no key names the job, no queue holds it, back-pressure is back."""
    assert api.call("DELETE", f"/api/analysis/{job_id}")[0] == 204
    time.sleep(5)
    assert job_keys(client, job_id) == []
    assert queued_of(client, job_id) == []
    assert back_pressure(client) == before
    assert api.get(f"/api/analysis/{job_id}")[0] == 404


def test_a_job_deleted_while_it_is_extracted_leaves_nothing_behind(
        services: list[Service], redis_url: str, redis_client: redis.Redis, model_dir: Path,
        sample_dir: Path) -> None:
    # A people worker only: the car queue fills to --max-pending and the runner waits on it,
    # still extracting, while people frames are taken, leased and answered.
    api = gateway_runner_and_people_worker(services, redis_url, sample_dir, model_dir, 8)
    before = back_pressure(redis_client)
    job_id = api.submit({"source": "vtest.avi", "types": list(TYPES)})

    def mid_extraction() -> bool:
        j = job(api, job_id)
        return (j["status"] == "extracting" and j["progress"]["people"]["done"] >= 3
                and back_pressure(redis_client)["car"] >= 8)

    wait_for(mid_extraction, 90, "the job to be extracted with people results coming in",
             interval=0.1)
    deleted_leaves_nothing(api, redis_client, job_id, before)

    # The runner was freed: it takes the next job at once.
    short = api.submit({"source": "vtest.avi", "types": ["people"], "frame_step": 200})
    done = wait_for(lambda: job(api, short)["status"] == "done" and job(api, short), 60,
                    "the next job to be done")
    assert done["frames_total"] == done["frames_done"] == 4
    assert all(s.alive() for s in services), [s.output()[-2000:] for s in services]


def test_a_job_deleted_while_it_is_processed_leaves_nothing_behind(
        services: list[Service], redis_url: str, redis_client: redis.Redis, model_dir: Path,
        sample_dir: Path) -> None:
    api = gateway_runner_and_people_worker(services, redis_url, sample_dir, model_dir, 1000)
    # Another job's 4 car frames wait (no car worker) before, during and after: they stay.
    other = api.submit({"source": "vtest.avi", "types": list(TYPES), "frame_step": 200})
    wait_for(lambda: job(api, other)["progress"]["people"]["done"] == 4, 90,
             "the other job's people frames to be done")
    before = back_pressure(redis_client)
    assert before == {"people": 0, "car": 4}
    job_id = api.submit({"source": "vtest.avi", "types": list(TYPES), "frame_step": 5})

    def processing() -> bool:
        j = job(api, job_id)
        return j["status"] == "processing" and j["progress"]["people"]["done"] >= 3

    wait_for(processing, 90, "the job to be processed", interval=0.1)
    assert back_pressure(redis_client)["car"] == 4 + 159  # every car frame waits
    deleted_leaves_nothing(api, redis_client, job_id, before)
    assert job(api, other)["progress"]["car"] == {"done": 0, "total": 4}
    assert len(queued_of(redis_client, other)) == 2 * 4  # its 4 ids and bodies in car
    assert all(s.alive() for s in services), [s.output()[-2000:] for s in services]


def test_a_job_on_an_endless_source_times_out_and_frees_the_runner(
        services: list[Service], redis_url: str, redis_client: redis.Redis,
        sample_dir: Path) -> None:
    camera = MjpegCamera(sample_dir / "vtest.avi", fps=5, limit=10)
    camera.start()
    try:
        # The camera is on loopback: listed explicitly (doc/security.md).
        gateway, api = start_gateway(redis_url, sample_dir, EI_SOURCE_ALLOW="127.0.0.1")
        services.append(gateway)
        services.append(runner(redis_url, sample_dir, "--max-job-seconds", "5",
                               "--source-allow", "127.0.0.1"))
        endless = api.submit({"source": camera.url, "types": ["people"]})
        wait_for(lambda: job(api, endless)["status"] == "extracting", 30, "extraction to start")
        started = time.monotonic()
        failed = wait_for(lambda: job(api, endless)["status"] == "failed" and job(api, endless),
                          40, "the endless job to time out", interval=0.1)
        assert time.monotonic() - started >= 3  # not before its time (polling granularity)
        assert "timed out" in failed["error"] and "EI_MAX_JOB_SECONDS" in failed["error"]
        # Its frames no longer wait for a worker; what was read stays until it is deleted.
        assert redis_client.llen(keys.job_queue("people")) == 0
        assert JobStore(redis_client).frame(endless, 0) is not None

        # The runner is free for the next job (no worker: it is extracted, not answered).
        short = api.submit({"source": "vtest.avi", "types": ["people"], "frame_step": 200})
        extracted = wait_for(lambda: job(api, short)["status"] == "processing" and
                             job(api, short), 30, "the next job to be extracted")
        assert extracted["frames_total"] == 4
        assert services[1].alive(), services[1].output()[-2000:]
        assert "timed out" in services[1].output()
    finally:
        camera.stop()


def test_new_jobs_are_refused_while_job_frames_fill_redis(
        services: list[Service], sample_dir: Path) -> None:
    server = RedisServer().start()
    try:
        client = redis.Redis.from_url(server.url)
        client.config_set("maxmemory", 64 << 20)
        # 1 % of 64 MB: about 13 of vtest's frames (~50 KB each) fill it.
        gateway, api = start_gateway(server.url, sample_dir, EI_JOB_MEMORY_SHARE="0.01")
        services.append(gateway)
        services.append(runner(server.url, sample_dir, "--max-pending", "40"))  # no worker
        big = api.submit({"source": "vtest.avi", "types": ["people"]})
        store = JobStore(client)
        wait_for(lambda: store.frame_bytes() > 0.01 * (64 << 20), 60,
                 "the job's frames to pass 1 % of Redis' memory")

        code, body = api.post({"source": "vtest.avi", "types": ["people"]})
        assert code == 503, body
        assert "job storage is full" in body["error"] and "EI_JOB_MEMORY_SHARE" in body["error"]
        assert [j["id"] for j in api.get("/api/analysis")[1]["jobs"]] == [big]

        assert api.call("DELETE", f"/api/analysis/{big}")[0] == 204
        code, body = api.post({"source": "vtest.avi", "types": ["people"], "frame_step": 200})
        assert code == 201, body
        client.close()
    finally:
        for s in services:
            s.stop()
        services.clear()
        server.stop()
