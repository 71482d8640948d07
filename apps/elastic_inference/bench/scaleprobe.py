"""What ``ei bench --scale`` runs beside the services: its child processes, the synthetic
media, websocket clients, the API poller, and the 720p encode/decode probe.

Every measured figure is a difference between two snapshots of counters (Redis INFO, /proc,
registry heartbeats, queue statistics, client counters), so start-up and warm-up fall outside
the window.
"""

from __future__ import annotations

import logging
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from ..core.errors import ConfigError, EIError
from .probes import percentile, proc_sample

log = logging.getLogger(__name__)

#: Each synthetic clip: this many frames at CLIP_FPS (the pool loops the file).
CLIP_FRAMES = 40
CLIP_FPS = 10.0


class Child:
    """One ``ei`` service process of the run; output in a log file, nothing from the caller's
    EI_* environment (secrets come in ``env``, never in argv)."""

    def __init__(self, kind: str, args: Sequence[str], log_dir: Path,
                 env: dict[str, str] | None = None) -> None:
        self.kind = kind
        self.log_path = log_dir / f"{kind}-{len(list(log_dir.iterdir()))}.log"
        full_env = {k: v for k, v in os.environ.items() if not k.startswith("EI_")}
        full_env.update(env or {})
        cmd = [sys.executable, "-m", "elastic_inference.cli", *args, "--metrics-host",
               "127.0.0.1", "--metrics-port", "0", "--log-level", "WARNING"]
        with self.log_path.open("wb") as out:
            self.proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=full_env)
        self.pid = self.proc.pid

    def check(self) -> None:
        """EIError with the tail of its log if it exited."""
        if self.proc.poll() is not None:
            tail = self.log_path.read_text(errors="replace").strip().splitlines()[-5:]
            raise EIError(f"{self.kind} exited with {self.proc.returncode}: "
                          + " | ".join(tail))

    def cpu_seconds(self) -> float:
        s = proc_sample(self.pid)
        return s.cpu_seconds if s else 0.0

    def stop(self, timeout: float = 20.0) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            log.warning("%s did not stop on SIGTERM in %.0f s; killed", self.kind, timeout)
            self.proc.kill()
            self.proc.wait()


def wait_listening(child: Child, port: int, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        child.check()
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.2)
    raise EIError(f"{child.kind} did not listen on port {port} within {timeout:.0f} s")


def make_clips(video: Path, media_dir: Path, count: int, size: tuple[int, int]) -> list[str]:
    """``count`` short MJPG clips of ``video`` at ``size``, each from another start frame
    (so the sources do not all show the same picture); their names in ``media_dir``."""
    cap = cv2.VideoCapture(str(video))
    if not cap.isOpened():
        raise ConfigError(f"cannot open sample video {video}")
    frames: list[np.ndarray] = []
    try:
        while len(frames) < CLIP_FRAMES * count:
            ok, image = cap.read()
            if not ok:
                break
            frames.append(cv2.resize(image, size, interpolation=cv2.INTER_AREA))
    finally:
        cap.release()
    if len(frames) < CLIP_FRAMES:
        raise ConfigError(f"sample video {video} has fewer than {CLIP_FRAMES} frames")
    names = []
    step = max(1, (len(frames) - CLIP_FRAMES) // max(1, count - 1))
    for i in range(count):
        start = min(i * step, len(frames) - CLIP_FRAMES)
        name = f"clip-{i:02d}.avi"
        writer = cv2.VideoWriter(str(media_dir / name), cv2.VideoWriter.fourcc(*"MJPG"),
                                 CLIP_FPS, size)
        for image in frames[start:start + CLIP_FRAMES]:
            writer.write(image)
        writer.release()
        names.append(name)
    return names


class WsClient(threading.Thread):
    """One websocket client receiving every stream's frames; counts messages and bytes."""

    def __init__(self, url: str, headers: dict[str, str]) -> None:
        super().__init__(name="bench-ws", daemon=True)
        self.url = url
        self.headers = headers
        self.halt = threading.Event()
        self.connected = threading.Event()
        self.frames = 0
        self.bytes = 0
        self.error = ""

    def run(self) -> None:
        from websockets.sync.client import connect  # only the bench's scale run needs it

        try:
            with connect(self.url, additional_headers=self.headers, max_size=2**24,
                         open_timeout=30) as ws:
                self.connected.set()
                while not self.halt.is_set():
                    try:
                        msg = ws.recv(timeout=0.5)
                    except TimeoutError:
                        continue
                    if isinstance(msg, bytes):
                        self.frames += 1
                        self.bytes += len(msg)
        except Exception as exc:  # noqa: BLE001 - reported in the figures, not fatal here
            self.error = f"{type(exc).__name__}: {exc}"
            self.connected.set()

    def snapshot(self) -> tuple[int, int]:
        return self.frames, self.bytes


class ApiPoller(threading.Thread):
    """GETs each path in turn (one request at a time, as a dashboard would) and keeps each
    request's latency in ms, and how many failed."""

    def __init__(self, base: str, paths: Sequence[str], headers: dict[str, str],
                 interval: float = 0.2) -> None:
        super().__init__(name="bench-api", daemon=True)
        self.base = base
        self.paths = list(paths)
        self.headers = headers
        self.interval = interval
        self.halt = threading.Event()
        self.latency: dict[str, list[float]] = {p: [] for p in self.paths}
        self.failed: dict[str, int] = dict.fromkeys(self.paths, 0)
        self.bytes: dict[str, int] = dict.fromkeys(self.paths, 0)

    def run(self) -> None:
        while not self.halt.is_set():
            for path in self.paths:
                request = urllib.request.Request(self.base + path, headers=self.headers)
                start = time.perf_counter()
                try:
                    with urllib.request.urlopen(request, timeout=10) as resp:
                        self.bytes[path] = len(resp.read())
                    self.latency[path].append(1000 * (time.perf_counter() - start))
                except (urllib.error.URLError, OSError):
                    self.failed[path] += 1
            self.halt.wait(self.interval)

    def figures(self) -> dict[str, dict[str, float]]:
        return {p: {"requests": len(v), "failed": self.failed[p],
                    "p50_ms": round(percentile(v, 50), 1), "p99_ms": round(percentile(v, 99), 1),
                    "bytes": self.bytes[p]}
                for p, v in self.latency.items()}


@dataclass(frozen=True)
class HdCost:
    """What one 1280x720 frame costs the stream service beside reading it: a JPEG encode at
    q80; and two stand-ins for decoding a camera's H.264 (not measured: OpenCV's wheel has no
    H.264 encoder to make a clip): a JPEG decode, and a decode of MPEG-4 Part 2 video (an
    inter-frame codec like H.264, though a simpler one)."""

    encode_ms: float
    decode_ms: float
    mpeg4_decode_ms: float
    jpeg_kb: float


def hd_cost(video: Path, workdir: Path, seconds: float = 2.0) -> HdCost:
    """CPU ms per 1280x720 frame (OpenCV on one thread), on real frames of ``video``."""
    cap = cv2.VideoCapture(str(video))
    images: list[np.ndarray] = []
    while len(images) < 60:
        ok, image = cap.read()
        if not ok:
            break
        images.append(cv2.resize(image, (1280, 720), interpolation=cv2.INTER_LINEAR))
    cap.release()
    if not images:
        raise ConfigError(f"sample video {video} has no readable frames")
    threads = cv2.getNumThreads()
    cv2.setNumThreads(1)
    try:
        jpegs: list[bytes] = []

        def encode(i: int) -> None:
            _, buf = cv2.imencode(".jpg", images[i % len(images)],
                                  [cv2.IMWRITE_JPEG_QUALITY, 80])
            if len(jpegs) < len(images):
                jpegs.append(buf.tobytes())

        encode_ms = _cpu_ms_each(encode, seconds)
        decode_ms = _cpu_ms_each(lambda i: cv2.imdecode(
            np.frombuffer(jpegs[i % len(jpegs)], np.uint8), cv2.IMREAD_COLOR), seconds)
        mpeg4_ms = _video_decode_ms(images, workdir / "hd.mp4")
    finally:
        cv2.setNumThreads(threads)
    return HdCost(round(encode_ms, 2), round(decode_ms, 2), round(mpeg4_ms, 2),
                  round(statistics.mean(len(j) for j in jpegs) / 1024, 1))


def _video_decode_ms(images: Sequence[np.ndarray], path: Path) -> float:
    """CPU ms per frame decoding ``images`` written as MPEG-4 Part 2 (0 if it cannot)."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"mp4v"), 15.0, (1280, 720))
    if not writer.isOpened():
        return 0.0
    for _ in range(3):
        for image in images:
            writer.write(image)
    writer.release()
    cap = cv2.VideoCapture(str(path))
    start, n = time.process_time(), 0
    while cap.read()[0]:
        n += 1
    cap.release()
    return 1000 * (time.process_time() - start) / n if n else 0.0


def _cpu_ms_each(step: Callable[[int], object], seconds: float) -> float:
    start = time.process_time()
    n = 0
    while time.process_time() - start < seconds:
        step(n)
        n += 1
    return 1000 * (time.process_time() - start) / n
