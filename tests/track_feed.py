"""What ``ei track`` reads and writes, for its tests: a stream of one person walking back and
forth (registry heartbeat and results, as a stream and its worker publish them), and the
tracks and metrics the tracker gives."""

from __future__ import annotations

import json
import threading
import time
import urllib.request
from typing import Any

import redis
from prometheus_client.parser import text_string_to_metric_families

from elastic_inference.core import keys
from elastic_inference.core.broker import OutputBroker
from elastic_inference.core.registry import StreamRegistry
from elastic_inference.core.result import Detection, Result
from tests.outputs import publish
from tests.processes import Service


def result(stream: str, seq: int, x: float) -> Result:
    """One person at ``x`` (box centre), feet at y 0.6."""
    now = time.time()
    return Result(stream, "people", seq, now, now, "m", "CPU", 640, 480,
                  (Detection("person", 0.9, (x - 0.03, 0.4, x + 0.03, 0.6)),))


def walk_x(seq: int, period: int = 60) -> float:
    """Back and forth across the middle: 0.2 .. 0.8 in ``period / 2`` frames each way."""
    phase = seq % period
    half = period // 2
    return 0.2 + 0.6 * (phase if phase < half else period - phase) / half


class FakeStream(threading.Thread):
    """A stream as ``ei track`` sees one: a registry heartbeat and results in its output,
    published at about ``fps``; rides through Redis errors (a restart test stops Redis)."""

    def __init__(self, url: str, stream: str, fps: float = 10.0, jpeg: bytes = b"\xff\xd8"
                 ) -> None:
        super().__init__(daemon=True, name=f"fake-{stream}")
        self.client = redis.Redis.from_url(url, socket_timeout=2)
        self.stream, self.fps, self.jpeg = stream, fps, jpeg
        self.seq = 0
        self.halt = threading.Event()

    def run(self) -> None:
        broker, registry = OutputBroker(self.client), StreamRegistry(self.client)
        while not self.halt.wait(1 / self.fps):
            try:
                registry.beat(self.stream, {"types": ["people"]})
                publish(broker, [(result(self.stream, self.seq, walk_x(self.seq)), self.jpeg)])
                self.seq += 1
            except redis.RedisError:
                continue

    def stop(self) -> None:
        self.halt.set()
        self.join(5)
        self.client.close()


def metrics(service: Service) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{service.metrics_port}/metrics",
                                timeout=5) as resp:
        text = resp.read().decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def owned(service: Service) -> float:
    return metrics(service).get(("ei_track_streams_owned", ()), 0.0)


def entries(client: redis.Redis, stream: str) -> list[dict[str, Any]]:
    return [json.loads(f[b"tracks"]) for _, f in client.xrange(keys.tracks(stream))]
