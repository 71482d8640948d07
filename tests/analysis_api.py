"""The analysis API for tests: a job request body, a real ``ei gateway`` process serving jobs
and a client for it (as an operator, with a real token), and the runner and worker processes
that do the jobs."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from email.message import Message
from pathlib import Path
from typing import Any

import redis

from elastic_inference.core.auth import Role
from tests.credentials import SECRET_ENV, bearer
from tests.processes import Service, http, wait_for
from tests.redis_server import free_port

LEASE = "3"  # seconds: short, so a killed worker's frames come back quickly
JSON = {"Content-Type": "application/json"}


class Api:
    """HTTP calls to one ``ei gateway`` process, as an operator (a real token)."""

    def __init__(self, port: int, auth: dict[str, str]) -> None:
        self.base = f"http://127.0.0.1:{port}"
        self.auth = auth

    def call(self, method: str, path: str, body: bytes | Iterable[bytes] | None = None,
             headers: dict[str, str] | None = None) -> tuple[int, Message, bytes]:
        return http(self.base + path, method, body, {**self.auth, **(headers or {})})

    def json(self, method: str, path: str, body: bytes | Iterable[bytes] | None = None,
             headers: dict[str, str] | None = None) -> tuple[int, Any]:
        code, head, raw = self.call(method, path, body, headers)
        assert head["Content-Type"].startswith("application/json"), (path, code, raw[:200])
        return code, json.loads(raw)

    def get(self, path: str) -> tuple[int, Any]:
        return self.json("GET", path)

    def post(self, job: Any) -> tuple[int, Any]:
        return self.json("POST", "/api/analysis", json.dumps(job).encode(), JSON)

    def submit(self, job: dict[str, Any]) -> str:
        code, body = self.post(job)
        assert code == 201, body
        return str(body["id"])

    def done(self, job_id: str) -> dict[str, Any] | None:
        """The job once it is done; fails the test at once if it failed."""
        code, job = self.get(f"/api/analysis/{job_id}")
        assert code == 200 and job["status"] != "failed", job
        return job if job["status"] == "done" else None

    def all_results(self, job_id: str, page: int) -> tuple[list[dict[str, Any]], int]:
        """Every frame's results, read ``page`` at a time; and how many pages it took."""
        frames: list[dict[str, Any]] = []
        pages = 0
        while True:
            code, body = self.get(f"/api/analysis/{job_id}/results?offset={len(frames)}"
                                  f"&limit={page}")
            assert code == 200, body
            assert (body["id"], body["offset"], body["limit"]) == (job_id, len(frames), page)
            pages += 1
            frames += body["frames"]
            if len(body["frames"]) < page:
                assert body["total"] == len(frames)
                return frames, pages


def gateway_api(redis_url: str, media_dir: Path) -> Iterator[Api]:
    """A real gateway serving jobs of ``media_dir``, as an operator; stopped afterwards."""
    port = free_port()
    gateway = Service(["gateway", "--host", "127.0.0.1", "--port", str(port),
                       "--media-dir", str(media_dir)],
                      env={"EI_REDIS_URL": redis_url, **SECRET_ENV})
    client = Api(port, bearer(redis.Redis.from_url(redis_url), Role.OPERATOR))
    try:
        wait_for(lambda: not gateway.alive() or client.call("GET", "/readyz")[0] == 200, 20,
                 "ei gateway to become ready")
        assert gateway.alive(), gateway.output()
        yield client
        assert gateway.alive(), gateway.output()[-2000:]
    finally:
        gateway.stop()


def start_runner(redis_url: str, sample_dir: Path) -> Service:
    return Service(["analysis", "--media-dir", str(sample_dir), "--lease-timeout", LEASE],
                   env={"EI_REDIS_URL": redis_url})


def start_worker(redis_url: str, model_dir: Path, infer_type: str = "people") -> Service:
    return Service(["infer", "--type", infer_type, "--model-dir", str(model_dir),
                    "--lease-timeout", LEASE], env={"EI_REDIS_URL": redis_url})


def job_body(**fields: Any) -> bytes:
    """A job request's JSON body: a file source and one type, ``fields`` added or replaced."""
    return json.dumps({"source": "v.avi", "types": ["people"], **fields}).encode()
