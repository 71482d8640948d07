"""The gateway application on a free port, in-process, against a real Redis, and the small
stream (``cam1``) its tests publish."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import cv2
import numpy as np
import redis
from prometheus_client import CollectorRegistry

from elastic_inference.core.broker import OutputBroker
from elastic_inference.core.metrics import GatewayMetrics
from elastic_inference.core.redisconn import connect
from elastic_inference.core.registry import StreamRegistry
from elastic_inference.core.result import Detection, Result
from elastic_inference.services.gateway import GatewayContext, make_app, serve
from tests.credentials import bearer, gatekeeper
from tests.outputs import publish
from tests.processes import http

W, H = 160, 120
STREAM_INFO = {"types": ["people", "face"], "source_kind": "file", "source": "vtest.avi",
               "w": W, "h": H, "fps": 10.0, "state": "running", "frames": 42}


def gray_jpeg() -> bytes:
    ok, buf = cv2.imencode(".jpg", np.full((H, W, 3), 128, np.uint8),
                           [cv2.IMWRITE_JPEG_QUALITY, 95])
    assert ok
    return buf.tobytes()


def result(infer_type: str, seq: int, box: tuple[float, float, float, float],
           label: str) -> Result:
    return Result(stream="cam1", type=infer_type, seq=seq, ts_capture=time.time(),
                  ts_done=time.time(), model="fake", device="CPU", w=W, h=H,
                  detections=(Detection(label, 0.8, box),))


def publish_cam1(client: redis.Redis) -> bytes:
    """cam1 registered, with people and face results for seq 4 (older) and 5 (newest); the
    JPEG they refer to."""
    jpeg = gray_jpeg()
    StreamRegistry(client).beat("cam1", STREAM_INFO)
    broker = OutputBroker(client)
    publish(broker, [(result("people", 4, (0.0, 0.0, 0.3, 0.3), "old"), jpeg)])
    publish(broker, [(result("people", 5, (0.1, 0.1, 0.45, 0.9), "person"), jpeg)])
    publish(broker, [(result("face", 5, (0.6, 0.2, 0.9, 0.5), "face"), jpeg)])
    return jpeg


class GatewayThread:
    """The gateway app on a free port, in its own event loop thread."""

    def __init__(self, url: str, **app_args: Any) -> None:
        """Credentials are checked as in production; ``get`` sends an admin token's."""
        self.client = connect(url)
        self.registry = CollectorRegistry()
        self.metrics = GatewayMetrics(self.registry)
        self.pool = ThreadPoolExecutor(max_workers=4)
        app_args.setdefault("gatekeeper", gatekeeper(self.client))
        try:
            self.auth = bearer(self.client) if app_args["gatekeeper"].enabled else {}
        except redis.ConnectionError:  # a test of Redis being down: any well-formed token
            self.auth = {"Authorization": "Bearer ei_" + "A" * 43}
        app = make_app(self.client, metrics=self.metrics, executor=self.pool, **app_args)
        self.app = app
        self.ctx: GatewayContext = app.ctx
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

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def get(self, path: str, method: str = "GET",
            headers: dict[str, str] | None = None) -> tuple[int, Any, bytes]:
        """One request with the admin token, unless ``headers`` are given instead."""
        return http(f"{self.url}{path}", method, b"{}" if method in ("POST", "PUT") else None,
                    headers=self.auth if headers is None else headers)

    def get_json(self, path: str, method: str = "GET") -> tuple[int, Any]:
        code, headers, body = self.get(path, method)
        assert headers["Content-Type"].startswith("application/json"), (path, headers)
        return code, json.loads(body)

    def stop(self) -> None:
        self.halt.set()
        self.thread.join(10)
        self.pool.shutdown(wait=True)
        self.client.close()
