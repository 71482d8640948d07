"""Gateway against a real redis-server over real HTTP.

The app runs in-process (``serve`` in its own event loop thread) except for the SIGTERM test,
which runs ``ei gateway`` as a subprocess.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import redis
from prometheus_client import CollectorRegistry

from elastic_inference.core.broker import OutputBroker
from elastic_inference.core.metrics import GatewayMetrics
from elastic_inference.core.queue import FrameQueue
from elastic_inference.core.redisconn import connect
from elastic_inference.core.registry import StreamRegistry, WorkerRegistry
from elastic_inference.core.result import Detection, Result
from elastic_inference.services.gateway import make_app, serve
from tests.processes import Service, get_json, wait_for
from tests.redis_server import RedisServer, free_port

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
W, H = 160, 120
STREAM_INFO = {"types": ["people", "face"], "source_kind": "file", "source": "vtest.avi",
               "w": W, "h": H, "fps": 10.0, "state": "running", "frames": 42}


def gray_jpeg() -> bytes:
    ok, buf = cv2.imencode(".jpg", np.full((H, W, 3), 128, np.uint8),
                           [cv2.IMWRITE_JPEG_QUALITY, 95])
    assert ok
    return buf.tobytes()


def decode(jpeg: bytes) -> np.ndarray:
    img = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert img is not None
    return img


def result(infer_type: str, seq: int, box: tuple[float, float, float, float],
           label: str) -> Result:
    return Result(stream="cam1", type=infer_type, seq=seq, ts_capture=time.time(),
                  ts_done=time.time(), model="fake", device="CPU", w=W, h=H,
                  detections=(Detection(label, 0.8, box),))


class GatewayThread:
    """The gateway app on a free port, in its own event loop thread."""

    def __init__(self, url: str) -> None:
        self.client = connect(url)
        self.metrics = GatewayMetrics(CollectorRegistry())
        self.pool = ThreadPoolExecutor(max_workers=4)
        app = make_app(self.client, metrics=self.metrics, executor=self.pool)
        self.halt = threading.Event()
        started = threading.Event()
        self.port = 0

        def on_start(port: int) -> None:
            self.port = port
            started.set()

        self.thread = threading.Thread(target=lambda: asyncio.run(
            serve(app, "127.0.0.1", 0, self.halt.is_set, started=on_start)), daemon=True)
        self.thread.start()
        assert started.wait(10)

    def get(self, path: str, method: str = "GET") -> tuple[int, Any, bytes]:
        data = b"{}" if method in ("POST", "PUT") else None
        req = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", data=data,
                                     method=method)
        try:
            with urllib.request.urlopen(req, timeout=15) as resp:
                return resp.status, resp.headers, resp.read()
        except urllib.error.HTTPError as err:
            with err:
                return err.code, err.headers, err.read()

    def get_json(self, path: str, method: str = "GET") -> tuple[int, Any]:
        code, headers, body = self.get(path, method)
        assert headers["Content-Type"].startswith("application/json"), (path, headers)
        return code, json.loads(body)

    def stop(self) -> None:
        self.halt.set()
        self.thread.join(10)
        self.pool.shutdown(wait=True)
        self.client.close()


@pytest.fixture
def gateway(redis_url: str) -> Iterator[GatewayThread]:
    gw = GatewayThread(redis_url)
    yield gw
    gw.stop()


@pytest.fixture
def published(redis_client: redis.Redis) -> bytes:
    """cam1 registered, with people and face results for seq 4 (older) and 5 (newest)."""
    jpeg = gray_jpeg()
    StreamRegistry(redis_client).beat("cam1", STREAM_INFO)
    broker = OutputBroker(redis_client)
    broker.publish([(result("people", 4, (0.0, 0.0, 0.3, 0.3), "old"), jpeg)])
    broker.publish([(result("people", 5, (0.1, 0.1, 0.45, 0.9), "person"), jpeg)])
    broker.publish([(result("face", 5, (0.6, 0.2, 0.9, 0.5), "face"), jpeg)])
    return jpeg


def test_lists_and_describes_streams(gateway: GatewayThread, published: bytes) -> None:
    code, body = gateway.get_json("/api/streams")
    assert code == 200
    [stream] = body["streams"]
    assert stream["id"] == "cam1"
    for k, v in STREAM_INFO.items():
        assert stream[k] == v
    assert time.time() - stream["last_seen"] < 10
    code, one = gateway.get_json("/api/streams/cam1")
    assert code == 200 and one == stream


def test_snapshot_draws_boxes_of_every_type(gateway: GatewayThread, published: bytes) -> None:
    code, headers, body = gateway.get("/api/streams/cam1/snapshot.jpg")
    assert code == 200
    assert headers["Content-Type"] == "image/jpeg"
    assert headers["Cache-Control"] == "no-store"
    assert headers["X-EI-Seq"] == "5"
    raw, snap = decode(published).astype(int), decode(body).astype(int)
    assert snap.shape == raw.shape
    diff = np.abs(snap - raw).sum(axis=2)

    def edge_changed(x: float, y: float) -> bool:
        px, py = round(x * (W - 1)), round(y * (H - 1))
        return bool(diff[py - 1:py + 2, px - 1:px + 2].max() > 60)

    assert edge_changed(0.1, 0.5)    # people box (seq 5), left edge
    assert edge_changed(0.9, 0.35)   # face box (seq 5), right edge
    assert diff[100:115, 120:155].max() < 30  # away from every box: untouched
    assert not edge_changed(0.03, 0.3)  # the older seq 4 box (bottom edge) is not drawn


def test_latest_results_per_type(gateway: GatewayThread, published: bytes) -> None:
    code, body = gateway.get_json("/api/streams/cam1/latest")
    assert code == 200 and body["stream"] == "cam1"
    assert set(body["results"]) == {"people", "face"}
    assert body["results"]["people"]["seq"] == 5
    assert body["results"]["face"]["detections"][0]["label"] == "face"


def test_status_per_type(gateway: GatewayThread, published: bytes,
                         redis_client: redis.Redis) -> None:
    queue = FrameQueue(redis_client, "people", maxlen=2)
    for _ in range(3):
        queue.push(b"frame")
    queue.count_drops("stale", 2)
    WorkerRegistry(redis_client, "car").beat("w1", {"model": "m", "device": "CPU"})
    code, body = gateway.get_json("/api/status")
    assert code == 200 and body["streams"] == 1
    types = {t["type"]: t for t in body["types"]}
    assert set(types) == {"car", "face", "people"}  # workers' types + live streams' types
    people = types["people"]["queue"]
    assert people == {"length": 2, "pushed": 3, "dropped": 3,
                      "drops": {"overflow": 1, "stale": 2, "invalid": 0}}
    [worker] = types["car"]["workers"]
    assert worker["id"] == "w1" and worker["model"] == "m"


def test_errors_are_json(gateway: GatewayThread, published: bytes) -> None:
    for path in ("/api/streams/bad%20id", "/api/streams/" + "a" * 100,
                 "/api/streams/bad%20id/snapshot.jpg"):
        code, body = gateway.get_json(path)
        assert code == 400 and "invalid stream id" in body["error"], path
    for path in ("/api/streams/nope", "/api/streams/nope/snapshot.jpg",
                 "/api/streams/nope/latest", "/api/unknown"):
        code, body = gateway.get_json(path)
        assert code == 404 and body["error"], path
    code, body = gateway.get_json("/api/streams", method="POST")
    assert code == 405 and body["error"]
    assert gateway.metrics.requests.labels("StreamHandler", "404")._value.get() == 1


def test_index_page_and_security_headers(gateway: GatewayThread) -> None:
    code, headers, body = gateway.get("/")
    assert code == 200 and b"/static/app.js" in body
    assert "unsafe-inline" not in headers["Content-Security-Policy"]
    assert headers["X-Frame-Options"] == "DENY"
    code, headers, _ = gateway.get("/api/streams")
    assert code == 200 and headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Referrer-Policy"] == "no-referrer"


def test_redis_outage_gives_503_and_recovers() -> None:
    server = RedisServer().start()
    gw = GatewayThread(server.url)
    try:
        assert gw.get_json("/readyz") == (200, {"status": "ready"})
        server.stop()
        for path in ("/readyz", "/api/streams", "/api/streams/cam1/snapshot.jpg"):
            code, body = gw.get_json(path)
            assert code == 503 and "Redis" in body["error"], path
        assert gw.get_json("/healthz")[0] == 200  # the process itself is fine
        server.start()
        deadline = time.monotonic() + 10
        while gw.get_json("/readyz")[0] != 200:
            assert time.monotonic() < deadline, "gateway did not recover"
            time.sleep(0.2)
        StreamRegistry(redis.Redis.from_url(server.url)).beat("cam9", STREAM_INFO)
        code, body = gw.get_json("/api/streams")
        assert code == 200 and [s["id"] for s in body["streams"]] == ["cam9"]
        assert gw.metrics.reconnects._value.get() >= 1
    finally:
        gw.stop()
        server.stop()


def test_cli_serves_metrics_and_exits_0_on_sigterm(redis_url: str) -> None:
    port = free_port()
    gw = Service(["gateway", "--redis-url", redis_url, "--host", "127.0.0.1", "--port",
                  str(port)])
    try:
        wait_for(lambda: get_json(f"http://127.0.0.1:{port}/readyz")[0] == 200 or
                 not gw.alive(), 20, "ei gateway to become ready")
        assert gw.alive(), gw.output()
        assert get_json(f"http://127.0.0.1:{port}/api/streams") == (200, {"streams": []})
        counted = 'ei_http_requests_total{code="200",handler="StreamsHandler"} 1.0'

        def metrics() -> str:
            url = f"http://127.0.0.1:{gw.metrics_port}/metrics"
            with urllib.request.urlopen(url, timeout=5) as r:
                return str(r.read().decode())

        # counted just after the response is written: may lag a moment
        wait_for(lambda: counted in metrics(), 5, f"{counted} in /metrics", interval=0.05)
    finally:
        assert gw.stop(timeout=15) == 0, gw.output()
