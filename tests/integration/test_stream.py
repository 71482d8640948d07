"""``ei stream`` against a real redis-server: queues, registry, signals, outages, bad sources."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import redis

from elastic_inference.core import keys
from elastic_inference.core.frame import decode
from elastic_inference.core.queue import FrameQueue
from elastic_inference.core.runtime import ServiceRuntime
from elastic_inference.core.settings import StreamSettings
from elastic_inference.services.stream import Source, SourceSpec, StreamService, parse_source
from tests.outputs import queued
from tests.processes import wait_for
from tests.redis_server import RedisServer
from tests.stream_process import TYPES, registry_entry

pytestmark = pytest.mark.integration

# ----------------------------------------------------------------------------- in process


def run_in_process(url: str, source: Source, **settings: Any) -> tuple[StreamService, int]:
    runtime = ServiceRuntime("stream-test")
    service = StreamService(StreamSettings(redis_url=url, **settings), runtime,
                            redis.Redis.from_url(url), source, "clip")
    return service, service.run()


def test_frames_reach_every_type_identically_and_the_queue_bound_holds(
        redis_url: str, redis_client: redis.Redis, clip: Path) -> None:
    maxlen = 8
    lengths: list[int] = []
    done = threading.Event()

    def watch() -> None:  # sample the queue lengths while the stream runs (no worker pops)
        while not done.is_set():
            lengths.extend(redis_client.llen(keys.queue(t)) for t in TYPES)
            time.sleep(0.005)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        service, code = run_in_process(redis_url, Source(parse_source(str(clip))), types=TYPES,
                                       fps=200.0, max_frames=30, queue_maxlen=maxlen,
                                       max_width=160, loop=False)
    finally:
        done.set()
        watcher.join()
    assert code == 0
    assert max(lengths) <= maxlen

    face, people = queued(redis_client, "face"), queued(redis_client, "people")
    assert len(face) == len(people) == maxlen
    assert [f.seq for f in face] == list(range(30 - maxlen, 30))  # the oldest were trimmed
    # Each JPEG is stored once, in the frame store; both queues refer to the same entry.
    assert redis_client.xlen(keys.frames("clip")) == 30
    for a, b in zip(face, people, strict=True):
        assert (a.type, b.type) == ("face", "people")
        assert a.stream == b.stream == "clip"
        assert a.ref and (a.seq, a.ts, a.ref, a.jpeg) == (b.seq, b.ts, b.ref, b.jpeg)
        assert (a.w, a.h) == (160, 120)
        image = cv2.imdecode(np.frombuffer(a.jpeg, np.uint8), cv2.IMREAD_COLOR)
        assert image is not None and image.shape == (120, 160, 3)
    assert face[0].ts < face[-1].ts <= time.time()

    for t in TYPES:
        stats = FrameQueue(redis_client, t).stats()
        assert stats.pushed == 30
        assert stats.drops["overflow"] == 30 - maxlen
        assert service.runtime.registry.get_sample_value(
            "ei_stream_overflow_drops_total", {"stream": "clip", "type": t}) == 30 - maxlen
    assert service.runtime.registry.get_sample_value(
        "ei_stream_frames_total", {"stream": "clip"}) == 30
    assert service.runtime.ready.is_set()
    assert registry_entry(redis_client, "clip") is None  # unregistered on exit


class ScriptedCapture:
    """A file-like capture whose frames are scripted: an image, or None for a corrupt frame."""

    def __init__(self, frames: list[Any]) -> None:
        self.frames = list(frames)
        self.total = len(frames)

    def isOpened(self) -> bool:  # noqa: N802
        return True

    def read(self) -> tuple[bool, Any]:
        if not self.frames:
            return False, None
        return True, self.frames.pop(0)

    def grab(self) -> bool:
        return bool(self.frames)

    def retrieve(self) -> tuple[bool, Any]:
        return self.read()

    def get(self, prop: int) -> float:
        return {cv2.CAP_PROP_FRAME_COUNT: float(self.total), cv2.CAP_PROP_FPS: 100.0,
                cv2.CAP_PROP_POS_FRAMES: float(self.total - len(self.frames))}.get(prop, 0.0)

    def release(self) -> None:
        pass


def test_corrupt_frames_are_counted_and_skipped_and_files_loop(
        redis_url: str, redis_client: redis.Redis) -> None:
    good = np.full((48, 64, 3), 90, np.uint8)
    opened: list[ScriptedCapture] = []

    def opener(_spec: SourceSpec) -> ScriptedCapture:
        opened.append(ScriptedCapture([good, None, good, np.zeros((0, 0), np.uint8), good]))
        return opened[-1]

    service, code = run_in_process(
        redis_url, Source(SourceSpec("file", "x.avi", "x.avi"), opener=opener), types=("people",),
        max_frames=7, queue_maxlen=50)
    assert code == 0
    assert len(opened) == 3  # 3 good frames per pass: the file looped twice to send 7
    assert service.sent == 7
    assert service.errors == 4  # 2 corrupt frames in each of the two full passes
    assert service.runtime.registry.get_sample_value(
        "ei_stream_capture_errors_total", {"stream": "clip"}) == 4
    frames = [decode(m) for m in redis_client.lrange(keys.queue("people"), 0, -1)]
    assert len(frames) == 7
    seqs = [f.seq for f in frames]
    assert seqs == sorted(seqs) and len(set(seqs)) == 7


class CountingCapture:
    """A real capture of ``clip`` that counts what the stream asks of it."""

    def __init__(self, clip: Path, live: bool) -> None:
        self.cap = cv2.VideoCapture(str(clip))
        self.live = live
        self.decoded = 0  # frames turned into images (read, or retrieve after grab)
        self.grabbed = 0

    def isOpened(self) -> bool:  # noqa: N802
        return bool(self.cap.isOpened())

    def read(self) -> tuple[bool, Any]:
        self.decoded += 1
        ok, image = self.cap.read()
        if not ok and not self.live:
            return False, None
        if not ok:  # a live source never ends: rewind
            self.cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
            ok, image = self.cap.read()
        return ok, image

    def grab(self) -> bool:
        time.sleep(0.02)  # a 50 fps camera paces the grabs
        self.grabbed += 1
        return True

    def retrieve(self) -> tuple[bool, Any]:
        return self.read()

    def get(self, prop: int) -> float:
        return float(self.cap.get(prop))

    def release(self) -> None:
        self.cap.release()


@pytest.mark.parametrize("kind", ["file", "url"])
def test_while_redis_is_down_nothing_is_decoded_that_cannot_be_sent(
        clip: Path, kind: str) -> None:
    """A file holds its position and a live source grabs without decoding while Redis is down:
    no core spent on frames that would be dropped."""
    server = RedisServer().start()
    captures: list[CountingCapture] = []

    def opener(_spec: SourceSpec) -> CountingCapture:
        captures.append(CountingCapture(clip, live=kind == "url"))
        return captures[-1]

    spec = SourceSpec(kind, "rtsp://127.0.0.1:1/x" if kind == "url" else str(clip), "clip")
    runtime = ServiceRuntime("stream-test")
    client = redis.Redis.from_url(server.url, socket_timeout=2, socket_connect_timeout=1)
    service = StreamService(StreamSettings(redis_url=server.url, types=("people",), fps=25.0,
                                           max_width=160), runtime, client,
                            Source(spec, opener=opener), "clip")
    thread = threading.Thread(target=service.run)
    thread.start()
    try:
        wait_for(lambda: service.sent >= 10, 15, "frames before the outage")
        server.stop()
        wait_for(lambda: service.backoff.failures > 0, 15, "the stream to see Redis down")
        def count() -> tuple[int, int]:  # a file reopens at its end: count every capture
            return sum(c.decoded for c in captures), sum(c.grabbed for c in captures)

        decoded, grabbed = count()
        sent = service.sent
        time.sleep(3.0)  # 75 frame slots at 25 fps
        during = count()[0] - decoded
        # Only the backoff's probes (0.1 s doubling to 5 s: at most ~6 in 3 s) decode a frame.
        assert during <= 8, f"{during} frames decoded while Redis was down"
        if kind == "url":
            assert count()[1] - grabbed >= 40  # the camera's buffer is still drained
        assert service.sent == sent
        server.start()
        wait_for(lambda: service.sent >= sent + 10, 20, "frames after Redis is back")
    finally:
        runtime.stop.set()
        thread.join(10)
        client.close()
        server.stop()
    assert not thread.is_alive()


