"""The websocket service for tests: a ``WebsocketService`` on a free port in its own event loop
thread, and a publisher of small synthetic frames and results for the streams it serves."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import cv2
import numpy as np
import redis
from prometheus_client import CollectorRegistry
from websockets.sync.client import ClientConnection, connect

from elastic_inference.core.auth import Role
from elastic_inference.core.broker import OutputBroker
from elastic_inference.core.metrics import (
    WebsocketMetrics,
)
from elastic_inference.core.redisconn import connect as redis_connect
from elastic_inference.core.registry import StreamRegistry
from elastic_inference.core.result import Detection, Result
from elastic_inference.services.websocket import WebsocketService
from tests.credentials import bearer, gatekeeper
from tests.outputs import publish


def make_jpeg(w: int = 96, h: int = 64, noise: bool = False, quality: int = 90) -> bytes:
    rng = np.random.default_rng(0)
    img = (rng.integers(0, 256, (h, w, 3), dtype=np.uint8) if noise
           else np.full((h, w, 3), 128, dtype=np.uint8))
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, quality])
    assert ok
    return buf.tobytes()


def make_result(stream: str, seq: int, w: int = 96, h: int = 64,
                infer_type: str = "people") -> Result:
    return Result(stream=stream, type=infer_type, seq=seq, ts_capture=time.time(),
                  ts_done=time.time(), model="fake", device="CPU", w=w, h=h,
                  detections=(Detection("person", 0.9, (0.1, 0.2, 0.5, 0.8)),))


class Publisher(threading.Thread):
    """Heartbeats the streams and publishes a frame for each every ``interval`` seconds."""

    def __init__(self, url: str, streams: list[str], jpeg: bytes, interval: float = 0.05,
                 limit: int = 0, types: tuple[str, ...] = ("people",)) -> None:
        super().__init__(daemon=True)
        self.client = redis.Redis.from_url(url)
        self.streams = streams
        self.jpeg = jpeg
        self.interval = interval
        self.limit = limit
        self.types = types
        self.halt = threading.Event()
        self.seq = 0
        self.last_ids: dict[str, str] = {}

    def run(self) -> None:
        broker, registry = OutputBroker(self.client), StreamRegistry(self.client)
        while not self.halt.is_set() and (not self.limit or self.seq < self.limit):
            try:
                for s in self.streams:
                    registry.beat(s, {"types": list(self.types), "source_kind": "file"})
                publish(broker, [(make_result(s, self.seq, infer_type=t), self.jpeg)
                                for s in self.streams for t in self.types])
                for s in self.streams:
                    self.last_ids[s] = broker.latest(s, 1)[0].entry_id
                self.seq += 1
            except redis.ConnectionError:
                pass  # the restart test stops Redis under us
            self.halt.wait(self.interval)

    def stop(self) -> None:
        self.halt.set()
        self.join(5)
        self.client.close()


class ServiceThread:
    """A WebsocketService on a free port, in its own event loop thread."""

    def __init__(self, url: str, **kwargs: Any) -> None:
        self.client = redis_connect(url)
        self.registry = CollectorRegistry()
        self.metrics = WebsocketMetrics(self.registry)
        kwargs.setdefault("refresh_s", 0.2)
        kwargs.setdefault("gatekeeper", gatekeeper(self.client))
        #: A viewer's token: what every client of these tests sends.
        self.auth = bearer(self.client, Role.VIEWER)
        self.service = WebsocketService(self.client, self.metrics, **kwargs)
        self.port = 0
        started = threading.Event()

        def on_start(port: int) -> None:
            self.port = port
            started.set()

        self.thread = threading.Thread(
            target=lambda: asyncio.run(self.service.run("127.0.0.1", 0, started=on_start)),
            daemon=True)
        self.thread.start()
        assert started.wait(10)

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    def connect(self, **kwargs: Any) -> ClientConnection:
        """A client with a viewer's token."""
        return connect(self.url, additional_headers=self.auth, **kwargs)

    def stop(self) -> None:
        self.service.stop.set()
        self.thread.join(10)
        self.client.close()
