"""Gateway against a real redis-server over real HTTP.

The app runs in-process (``serve`` in its own event loop thread) except for the SIGTERM test,
which runs ``ei gateway`` as a subprocess.
"""

from __future__ import annotations

import json
import math
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import redis

from elastic_inference.core import keys
from elastic_inference.core.auth import Role
from elastic_inference.core.broker import OutputBroker
from elastic_inference.core.frame import Frame
from elastic_inference.core.metrics import HTTP_REQUESTS, REDIS_RECONNECTS
from elastic_inference.core.queue import FrameQueue
from elastic_inference.core.registry import StreamRegistry, WorkerRegistry
from elastic_inference.core.runtime import ServiceRuntime
from elastic_inference.core.settings import InferSettings, parse_settings
from elastic_inference.engine.factory import load_detector
from elastic_inference.services.infer import InferWorker
from tests.credentials import SECRET_ENV, bearer
from tests.gateway_app import STREAM_INFO, GatewayThread, H, W, gray_jpeg, result
from tests.jpegs import decode, vtest_jpegs
from tests.outputs import publish
from tests.processes import Service, get_json, http, wait_for
from tests.redis_server import RedisServer, free_port

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
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


def test_snapshot_of_a_frame_no_longer_stored(gateway: GatewayThread,
                                              redis_client: redis.Redis) -> None:
    """The newest frame trimmed from the frame store: the newest one still stored is shown;
    none stored: 404 (as without output), not a broken picture."""
    StreamRegistry(redis_client).beat("cam1", STREAM_INFO)
    broker = OutputBroker(redis_client)
    jpeg = gray_jpeg()
    old, new = publish(broker, [(result("people", 4, (0.1, 0.1, 0.45, 0.9), "old"), jpeg),
                                (result("people", 5, (0.6, 0.2, 0.9, 0.5), "new"), jpeg)])
    redis_client.xdel(keys.frames("cam1"), new)
    code, headers, body = gateway.get("/api/streams/cam1/snapshot.jpg")
    assert code == 200 and headers["X-EI-Seq"] == "4"
    diff = np.abs(decode(body).astype(int) - decode(jpeg).astype(int)).sum(axis=2)
    assert diff[round(0.5 * (H - 1)), round(0.1 * (W - 1)) - 1:round(0.1 * (W - 1)) + 2
                ].max() > 60  # seq 4's box is drawn on it
    redis_client.xdel(keys.frames("cam1"), old)
    code, _, body = gateway.get("/api/streams/cam1/snapshot.jpg")
    assert code == 404 and b"EI_FRAME_KEEP" in body


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
    # No worker serves people and face, yet frames wait for people: one worker is wanted.
    assert types["people"]["workers"] == [] and types["people"]["desired_workers"] == 1
    assert types["face"]["desired_workers"] == 0 and types["face"]["models"] == []
    assert types["car"]["models"] == ["m"] and types["car"]["devices"] == ["CPU"]


def test_status_totals_over_the_workers_of_a_type(gateway: GatewayThread,
                                                  redis_client: redis.Redis) -> None:
    registry = WorkerRegistry(redis_client, "people")
    registry.beat("w1", {"model": "ssd", "device": "CPU", "infer_fps": 9.5, "drop_fps": 2.0,
                         "scale_ratio": 1.25, "capacity_fps": 10.0, "queue_length": 4})
    registry.beat("w2", {"model": "ssd-int8", "device": "GPU", "infer_fps": 10.5,
                         "drop_fps": 2.0, "scale_ratio": 1.05, "capacity_fps": 14.0,
                         "queue_length": 4})
    code, body = gateway.get_json("/api/status")
    assert code == 200
    [people] = body["types"]
    assert [w["id"] for w in people["workers"]] == ["w1", "w2"]
    assert people["workers"][0]["queue_length"] == 4  # heartbeat fields pass through
    assert {k: people[k] for k in ("infer_fps", "drop_fps", "scale_ratio", "desired_workers",
                                   "capacity_fps", "models", "devices")} == {
        "infer_fps": 20.0, "drop_fps": 4.0, "scale_ratio": 2.3, "desired_workers": 3,
        "capacity_fps": 12.0, "models": ["ssd", "ssd-int8"], "devices": ["CPU", "GPU"]}


def test_status_reads_a_real_workers_heartbeat(gateway: GatewayThread, redis_url: str,
                                               redis_client: redis.Redis,
                                               model_dir: Path) -> None:
    settings = parse_settings(InferSettings, [
        "--type", "people", "--model-dir", str(model_dir), "--redis-url", redis_url,
        "--max-frames", "12", "--batch", "2", "--max-age", "0"], {})
    detector = load_detector("people", model_dir, "CPU")
    worker = InferWorker(settings, redis.Redis.from_url(redis_url), detector,
                         ServiceRuntime("infer-test"), worker_id="people-1")
    queue = FrameQueue(redis_client, "people", maxlen=100)
    for seq, jpeg in enumerate(vtest_jpegs(12)):
        queue.push(Frame(stream="vtest", type="people", seq=seq, ts=time.time(), w=320,
                         h=240, jpeg=jpeg).encode())
    worker.run()  # a small batch: frames complete while it runs, so capacity is measured
    worker.update_stats()  # the drop counter's baseline
    overflowing = FrameQueue(redis_client, "people", maxlen=1)
    for _ in range(4):
        overflowing.push(b"frame")  # 3 overflow drops
    worker.update_stats()
    code, body = gateway.get_json("/api/status")
    assert code == 200
    [people] = body["types"]
    [beat] = people["workers"]
    assert beat["id"] == "people-1" and beat["queue_length"] == 1
    assert beat["drop_fps"] > 0 and beat["scale_ratio"] > 0 and beat["infer_fps"] > 0, beat
    assert people["infer_fps"] == beat["infer_fps"]
    assert people["drop_fps"] == beat["drop_fps"]
    assert people["scale_ratio"] == beat["scale_ratio"]
    assert people["capacity_fps"] == beat["capacity_fps"] > 0
    assert people["desired_workers"] == max(1, math.ceil(beat["scale_ratio"]))
    assert people["models"] == [detector.model] and people["devices"] == ["CPU"]


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
    assert gateway.registry.get_sample_value(
        HTTP_REQUESTS, {"handler": "StreamHandler", "code": "404"}) == 1


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
        wait_for(lambda: gw.get_json("/readyz")[0] == 200, 10, "the gateway to recover")
        client = redis.Redis.from_url(server.url)
        StreamRegistry(client).beat("cam9", STREAM_INFO)
        gw.auth = bearer(client)  # the restarted server keeps no data: a new token
        code, body = gw.get_json("/api/streams")
        assert code == 200 and [s["id"] for s in body["streams"]] == ["cam9"]
        reconnects = gw.registry.get_sample_value(REDIS_RECONNECTS, {"component": "gateway"})
        assert (reconnects or 0) >= 1
    finally:
        gw.stop()
        server.stop()


def test_cli_serves_metrics_and_exits_0_on_sigterm(redis_url: str) -> None:
    port = free_port()
    gw = Service(["gateway", "--redis-url", redis_url, "--host", "127.0.0.1", "--port",
                  str(port)], SECRET_ENV)
    try:
        wait_for(lambda: get_json(f"http://127.0.0.1:{port}/readyz")[0] == 200 or
                 not gw.alive(), 20, "ei gateway to become ready")
        assert gw.alive(), gw.output()
        auth = bearer(redis.Redis.from_url(redis_url), Role.VIEWER)
        code, _, body = http(f"http://127.0.0.1:{port}/api/streams", headers=auth)
        assert (code, json.loads(body)) == (200, {"streams": []})
        counted = 'ei_http_requests_total{code="200",handler="StreamsHandler"} 1.0'

        def metrics() -> str:
            url = f"http://127.0.0.1:{gw.metrics_port}/metrics"
            with urllib.request.urlopen(url, timeout=5) as r:
                return str(r.read().decode())

        # counted just after the response is written: may lag a moment
        wait_for(lambda: counted in metrics(), 5, f"{counted} in /metrics", interval=0.05)
    finally:
        assert gw.stop(timeout=15) == 0, gw.output()
