"""``ei stream`` against a real redis-server: queues, registry, signals, outages, bad sources."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import redis

from elastic_inference.core import keys
from elastic_inference.core.frame import decode
from elastic_inference.core.queue import FrameQueue
from elastic_inference.core.registry import StreamRegistry
from elastic_inference.core.runtime import ServiceRuntime
from elastic_inference.core.settings import StreamSettings
from elastic_inference.services.stream import Source, SourceSpec, StreamService, parse_source
from tests.conftest import REPO
from tests.mjpeg_camera import MjpegCamera
from tests.outputs import queued
from tests.processes import environment, wait_for
from tests.redis_server import RedisServer, free_port

pytestmark = pytest.mark.integration

TYPES = ("face", "people")


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 40-frame 320x240 MJPG AVI at 20 fps with a moving disc and square."""
    path = tmp_path_factory.mktemp("video") / "moving shapes.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), 20.0, (320, 240))
    for i in range(40):
        image = np.full((240, 320, 3), 40, np.uint8)
        cv2.circle(image, (20 + i * 7, 120), 25, (0, 200, 0), -1)
        cv2.rectangle(image, (200 - i * 3, 30), (240 - i * 3, 70), (0, 0, 220), -1)
        writer.write(image)
    writer.release()
    assert cv2.VideoCapture(str(path)).get(cv2.CAP_PROP_FRAME_COUNT) == 40
    return path


def clean_env(**extra: str) -> dict[str, str]:
    return environment(**{"EI_METRICS_HOST": "127.0.0.1", "EI_METRICS_PORT": "0", **extra})


class StreamProcess:
    """``python -m elastic_inference.cli stream ...`` with its log in a file."""

    def __init__(self, log_path: Path, args: list[str], env: dict[str, str]) -> None:
        self.log_path = log_path
        self._log = log_path.open("wb")
        self.proc = subprocess.Popen([sys.executable, "-m", "elastic_inference.cli", "stream",
                                      *args], cwd=REPO, env=env, stdout=self._log,
                                     stderr=subprocess.STDOUT)

    @property
    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def running(self) -> bool:
        return self.proc.poll() is None

    def terminate(self, timeout: float = 10.0) -> int:
        if self.running():
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout)
        finally:
            self._log.close()

    def kill(self) -> None:
        if self.running():
            self.proc.kill()
            self.proc.wait(timeout=10)
        self._log.close()


@pytest.fixture
def spawn(tmp_path: Path) -> Iterator[Callable[..., StreamProcess]]:
    started: list[StreamProcess] = []

    def start(*args: str, **env: str) -> StreamProcess:
        p = StreamProcess(tmp_path / f"stream-{len(started)}.log", list(args), clean_env(**env))
        started.append(p)
        return p

    yield start
    for p in started:
        p.kill()


def registry_entry(client: redis.Redis, stream_id: str) -> dict[str, Any] | None:
    for member in StreamRegistry(client).members():
        if member.id == stream_id:
            return member.info
    return None


def metric(port: int, line_start: str) -> float | None:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as reply:
        for line in reply.read().decode().splitlines():
            if line.startswith(line_start):
                return float(line.rsplit(" ", 1)[1])
    return None


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


# ----------------------------------------------------------------------------- as a process


def test_registry_while_running_then_sigterm_exits_0_and_unregisters(
        spawn: Callable[..., StreamProcess], redis_url: str, redis_client: redis.Redis,
        clip: Path) -> None:
    port = free_port()
    p = spawn("--source", str(clip), "--types", "face,people", "--fps", "40",
              "--queue-maxlen", "4", EI_REDIS_URL=redis_url, EI_METRICS_PORT=str(port))
    info = wait_for(lambda: (e := registry_entry(redis_client, "moving-shapes")) and
                    e["frames"] > 20 and e, 15, "the stream in the registry with frames")
    assert info["types"] == ["face", "people"]
    assert info["source_kind"] == "file"
    assert (info["source"], info["state"]) == ("moving shapes.avi", "live")
    assert (info["w"], info["h"], info["fps"]) == (320, 240, 40.0)
    for t in TYPES:
        assert redis_client.llen(keys.queue(t)) <= 4
        assert int(redis_client.hget(keys.queue_stats(t), "overflow") or 0) > 0
    overflow = metric(port, 'ei_stream_overflow_drops_total{stream="moving-shapes",type="face"}')
    assert overflow is not None and overflow > 0
    assert urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=5).status == 200
    assert p.running()

    assert p.terminate() == 0
    assert registry_entry(redis_client, "moving-shapes") is None
    assert "SIGTERM received" in p.log


def test_a_killed_stream_leaves_the_registry_within_a_few_seconds(
        spawn: Callable[..., StreamProcess], redis_url: str, redis_client: redis.Redis,
        clip: Path) -> None:
    p = spawn("--source", str(clip), "--stream-id", "doomed", EI_REDIS_URL=redis_url)
    wait_for(lambda: registry_entry(redis_client, "doomed"), 15, "the stream to register")
    p.kill()  # SIGKILL: no cleanup runs, so only the heartbeat TTL removes it
    # A deadline for the expiry to happen at all, not a measure of how soon: readers drop an
    # entry whose heartbeat is older than the TTL (5 s), whatever the machine's speed.
    registry = StreamRegistry(redis_client)
    wait_for(lambda: "doomed" not in registry.ids(), registry.ttl + 10, "the entry to expire")


def test_survives_a_redis_restart(spawn: Callable[..., StreamProcess], clip: Path) -> None:
    server = RedisServer().start()  # our own server: restarting it disturbs no other test
    try:
        client = redis.Redis.from_url(server.url)
        port = free_port()
        p = spawn("--source", str(clip), "--types", "face,people", "--fps", "30",
                  EI_REDIS_URL=server.url, EI_METRICS_PORT=str(port))
        wait_for(lambda: client.hget(keys.queue_stats("face"), "pushed"), 15, "first frames")

        server.restart(down_for=1.0)  # a fresh, empty Redis on the same port
        client = redis.Redis.from_url(server.url)
        assert p.running()
        wait_for(lambda: int(client.hget(keys.queue_stats("people"), "pushed") or 0) >= 5, 15,
                 "frames to resume after the restart")
        wait_for(lambda: registry_entry(client, "moving-shapes"), 5, "the stream to re-register")
        frame = decode(client.lindex(keys.queue("face"), -1))
        assert frame.stream == "moving-shapes"
        assert metric(port, 'ei_redis_reconnects_total{component="stream"}') == 1
        assert p.running()
        assert p.terminate() == 0
        assert "Redis unavailable" in p.log and "reachable again" in p.log
        assert "Traceback" not in p.log
        client.close()
    finally:
        server.stop()


@pytest.mark.parametrize(("source", "stream_id", "kind", "public"), [
    ("9", "cam9", "webcam", "9"),
    ("rtsp://admin:s3cret@127.0.0.1:1/live?token=t0ken", "127.0.0.1-1-live", "url",
     "rtsp://admin:***@127.0.0.1:1/live?token=***"),
])
def test_a_live_source_that_does_not_open_keeps_retrying(
        spawn: Callable[..., StreamProcess], redis_url: str, redis_client: redis.Redis,
        source: str, stream_id: str, kind: str, public: str) -> None:
    p = spawn("--source", source, EI_REDIS_URL=redis_url)
    info = wait_for(lambda: registry_entry(redis_client, stream_id), 15, "a registry entry")
    assert (info["state"], info["source_kind"], info["source"]) == ("retrying", kind, public)
    # At least two reopen attempts (after 0.5 s, then 1 s), however long each takes to fail.
    info = wait_for(lambda: (e := registry_entry(redis_client, stream_id)) and
                    e["errors"] >= 2 and e, 20, "a second failed open")
    assert p.running() and info["state"] == "retrying"
    assert p.terminate() == 0
    assert "reopening in" in p.log
    assert "s3cret" not in p.log and "t0ken" not in p.log
    assert registry_entry(redis_client, stream_id) is None


@pytest.mark.parametrize(("env", "args", "named"), [
    ({"EI_FPS": "-1"}, [], "EI_FPS"),
    ({"EI_FPZ": "10"}, [], "EI_FPZ"),
    ({}, ["--queue-maxlen", "0"], "--queue-maxlen"),
    ({}, [], "EI_SOURCE"),
])
def test_bad_settings_exit_2_naming_the_variable(
        spawn: Callable[..., StreamProcess], clip: Path, env: dict[str, str], args: list[str],
        named: str) -> None:
    source = [] if named == "EI_SOURCE" else ["--source", str(clip)]
    p = spawn(*source, *args, EI_REDIS_URL="redis://127.0.0.1:1/0", **env)
    assert p.proc.wait(timeout=30) == 2
    assert named in p.log and "configuration error" in p.log


def test_a_missing_file_exits_1_with_a_message(spawn: Callable[..., StreamProcess],
                                                redis_url: str, tmp_path: Path) -> None:
    p = spawn("--source", str(tmp_path / "nope.avi"), EI_REDIS_URL=redis_url)
    assert p.proc.wait(timeout=30) == 1
    assert "cannot open video file" in p.log and "nope.avi" in p.log


# ----------------------------------------------------------------------------- a live HTTP camera


def test_an_http_camera_that_dies_mid_stream_is_retried_and_resumes(
        spawn: Callable[..., StreamProcess], redis_url: str, redis_client: redis.Redis,
        clip: Path) -> None:
    camera = MjpegCamera(clip)
    camera.start()
    port = free_port()
    p = spawn("--source", camera.url, "--stream-id", "cam", "--types", "people",
              EI_REDIS_URL=redis_url, EI_METRICS_PORT=str(port))
    try:
        stats = keys.queue_stats("people")
        wait_for(lambda: int(redis_client.hget(stats, "pushed") or 0) >= 10, 20,
                 "frames from the camera")
        assert registry_entry(redis_client, "cam")["state"] == "live"  # type: ignore[index]
        assert metric(port, 'ei_stream_state{state="live",stream="cam"}') == 1

        camera.stop()
        wait_for(lambda: (registry_entry(redis_client, "cam") or {}).get("state") == "retrying",
                 20, "the stream to show the camera as retrying")
        assert metric(port, 'ei_stream_state{state="retrying",stream="cam"}') == 1
        before = int(redis_client.hget(stats, "pushed") or 0)

        camera.start()
        wait_for(lambda: (registry_entry(redis_client, "cam") or {}).get("state") == "live",
                 30, "the stream to be live again")
        wait_for(lambda: int(redis_client.hget(stats, "pushed") or 0) >= before + 10, 20,
                 "frames to resume")
        info = registry_entry(redis_client, "cam")
        assert info is not None and info["reconnects"] == 1 and info["errors"] >= 1
        assert metric(port, 'ei_stream_source_reconnects_total{stream="cam"}') == 1
        assert p.running()
        assert p.terminate() == 0
        assert "live -> retrying" in p.log and "retrying -> live" in p.log
    finally:
        camera.stop()


def test_a_source_that_stays_down_is_shown_as_failed_after_max_retries(
        spawn: Callable[..., StreamProcess], redis_url: str, redis_client: redis.Redis) -> None:
    port = free_port()
    p = spawn("--source", f"http://127.0.0.1:{free_port()}/none.mjpg", "--stream-id", "gone",
              "--max-retries", "2", EI_REDIS_URL=redis_url, EI_METRICS_PORT=str(port))
    # Tries: the first open, then reopens after 0.5 s and 1 s; the third failure gives up.
    info = wait_for(lambda: (registry_entry(redis_client, "gone") or {}).get("state") == "failed"
                    and registry_entry(redis_client, "gone"), 20, "the failed state")
    assert info["errors"] == 3
    assert metric(port, 'ei_stream_state{state="failed",stream="gone"}') == 1
    time.sleep(1.5)
    assert p.running() and (registry_entry(redis_client, "gone") or {})["errors"] == 3
    assert p.terminate() == 0
    assert "giving up after 2 tries (EI_MAX_RETRIES)" in p.log
