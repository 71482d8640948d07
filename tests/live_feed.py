"""A live stream for the gateway's and websocket's tests: vtest frames published with
OutputBroker for two types a frame, as two workers would, and what a viewer and a service
show (an MJPEG part, readiness, a metric)."""

from __future__ import annotations

import threading
import time
import urllib.request
from http.client import HTTPResponse

import redis

from elastic_inference.core.broker import OutputBroker
from elastic_inference.core.registry import StreamRegistry
from elastic_inference.core.result import Detection, Result
from elastic_inference.services.gateway import MJPEG_BOUNDARY
from tests.jpegs import decode, vtest_jpegs
from tests.outputs import publish
from tests.processes import Service, wait_for

STREAM = "vtest"
PEOPLE_BOX = (0.1, 0.1, 0.45, 0.9)
FACE_BOX = (0.6, 0.2, 0.9, 0.5)


class Publisher:
    """Publishes vtest frames (people and face results for each) at ``fps`` until stopped."""

    def __init__(self, client: redis.Redis, fps: float = 25.0, stream: str = STREAM) -> None:
        self.jpegs = vtest_jpegs(60)
        self.raw = [decode(j).astype(int) for j in self.jpegs]
        self.h, self.w = self.raw[0].shape[:2]
        self.broker = OutputBroker(client)
        self.registry = StreamRegistry(client)
        self.stream, self.fps = stream, fps
        self.published = 0
        self.halt = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def result(self, infer_type: str, seq: int, label: str,
               box: tuple[float, float, float, float]) -> Result:
        # The score drawn varies with seq: frames stay distinct when the video loops.
        return Result(stream=self.stream, type=infer_type, seq=seq, ts_capture=time.time(),
                      ts_done=time.time(), model="fake", device="CPU", w=self.w, h=self.h,
                      detections=(Detection(label, 0.5 + seq % 50 / 100, box),))

    def _run(self) -> None:
        seq = 0
        while not self.halt.is_set():
            if seq % 10 == 0:
                self.registry.beat(self.stream, {"types": ["people", "face"], "w": self.w,
                                                 "h": self.h})
            jpeg = self.jpegs[seq % len(self.jpegs)]
            # Two types publish for one frame, a moment apart, as two workers would.
            publish(self.broker, [(self.result("people", seq, "person", PEOPLE_BOX), jpeg)])
            publish(self.broker, [(self.result("face", seq, "face", FACE_BOX), jpeg)])
            self.published = seq = seq + 1
            self.halt.wait(1.0 / self.fps)

    def __enter__(self) -> Publisher:
        """Starts publishing and returns once the stream is registered and has a frame out, so
        a viewer opened next never races the first heartbeat (a 404 for an unknown stream)."""
        self.thread.start()
        try:
            wait_for(lambda: self.published >= 1, 10, "the first frame to be published")
        except AssertionError:
            self.__exit__()
            raise
        return self

    def __exit__(self, *_exc: object) -> None:
        self.halt.set()
        self.thread.join(5)


def read_part(resp: HTTPResponse) -> bytes | None:
    """The next JPEG of a multipart body; ``None`` at its closing boundary or at EOF."""
    line = resp.readline()
    while line == b"\r\n":
        line = resp.readline()
    if not line or line.rstrip() == f"--{MJPEG_BOUNDARY}--".encode():
        return None
    assert line == f"--{MJPEG_BOUNDARY}\r\n".encode(), line
    headers = {}
    while (header := resp.readline().rstrip(b"\r\n")):
        name, _, value = header.partition(b":")
        headers[name.strip().lower()] = value.strip()
    assert headers[b"content-type"] == b"image/jpeg"
    body = resp.read(int(headers[b"content-length"]))
    assert resp.read(2) == b"\r\n"
    return body


def ready(svc: Service) -> bool:
    with urllib.request.urlopen(f"http://127.0.0.1:{svc.metrics_port}/readyz",
                                timeout=2) as resp:
        return bool(resp.status == 200)


def metric(svc: Service, name: str) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{svc.metrics_port}/metrics",
                                timeout=5) as resp:
        text = resp.read().decode()
    line = next(ln for ln in text.splitlines() if ln.startswith(name + " "))
    return float(line.split()[1])
