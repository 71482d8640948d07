"""What the soak drives from outside: browsers coming and going, and analysis jobs."""

from __future__ import annotations

import json
import math
import random
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import cv2
import redis
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from elastic_inference.core import keys
from elastic_inference.core.jobs import JobStore
from elastic_inference.core.live import decode_frame
from tests.processes import http

from .report import ChurnTally, JobTally
from .system import STREAM_TYPES

JOB_SOURCE = "vtest.avi"
JOB_TYPES = ("people", "car", "face")


class Churn(threading.Thread):
    """Clients of one kind opening, reading for 1-5 s and closing, one after another, until
    stopped; counts sessions, those that received frames, and errors by kind."""

    def __init__(self, kind: str, base: str, stop: threading.Event, seed: int,
                 clock: Callable[[], float]) -> None:
        super().__init__(name=f"churn-{kind}", daemon=True)
        self.kind, self.base, self.stop, self.clock = kind, base, stop, clock
        self.rng = random.Random(seed)
        self.sessions = self.with_frames = self.frames = 0
        self.errors: Counter[str] = Counter()
        self.error_times: list[float] = []  # when (on ``clock``), to set beside the faults
        self.empty_times: list[float] = []  # sessions that ended without error or frame

    def run(self) -> None:
        while not self.stop.is_set():
            hold = self.rng.uniform(1.0, 5.0)
            failed = False
            try:
                n = self._ws(hold) if self.kind == "ws" else self._mjpeg(hold)
            except Exception as exc:  # noqa: BLE001 - every failure is a figure, not a crash
                self.errors[error_kind(exc)] += 1
                self.error_times.append(round(self.clock()))
                failed = True
                n = 0
                self.stop.wait(1.0)
            self.sessions += 1
            self.frames += n
            self.with_frames += n > 0
            if n == 0 and not failed:
                self.empty_times.append(round(self.clock()))
            self.stop.wait(self.rng.uniform(0.0, 1.0))

    def _ws(self, hold: float) -> int:
        """Through the gateway's /ws, as the dashboard connects."""
        n = 0
        end = time.monotonic() + hold
        url = self.base.replace("http://", "ws://") + "/ws"
        with connect(url, open_timeout=10, max_size=16 * 2**20) as ws:
            while time.monotonic() < end:
                try:
                    msg = ws.recv(timeout=max(0.05, end - time.monotonic()))
                except TimeoutError:
                    break
                if isinstance(msg, bytes):
                    decode_frame(msg)
                    n += 1
        return n

    def _mjpeg(self, hold: float) -> int:
        """A viewer of one stream's MJPEG; counts the JPEG parts it got."""
        stream = self.rng.choice(sorted(STREAM_TYPES))
        n = 0
        end = time.monotonic() + hold
        url = f"{self.base}/api/streams/{stream}/mjpeg?fps=5"
        with urllib.request.urlopen(url, timeout=10) as resp:
            while time.monotonic() < end:
                chunk = resp.read1(65536)
                if not chunk:
                    break
                n += chunk.count(b"Content-Type: image/jpeg")
        return n

    def tally(self) -> ChurnTally:
        return ChurnTally(self.kind, self.sessions, self.with_frames, self.frames,
                          dict(self.errors), tuple(self.error_times),
                          tuple(self.empty_times))


def error_kind(exc: Exception) -> str:
    """``HTTP 503`` for a refused request or websocket handshake, else the exception's class."""
    if isinstance(exc, urllib.error.HTTPError):
        return f"HTTP {exc.code}"
    if isinstance(exc, InvalidStatus):
        return f"HTTP {exc.response.status_code}"
    return type(exc).__name__


def video_frames(path: Path) -> int:
    """The number of frames a decoder reads from ``path`` (what a runner will read)."""
    cap = cv2.VideoCapture(str(path))
    n = 0
    while cap.grab():
        n += 1
    cap.release()
    return n


def submit_job(base: str, frame_step: int, name: str) -> str:
    body = json.dumps({"source": JOB_SOURCE, "types": list(JOB_TYPES),
                       "frame_step": frame_step, "name": name}).encode()
    code, _, answer = http(f"{base}/api/analysis", "POST", body,
                           {"Content-Type": "application/json"})
    if code != 201:
        raise RuntimeError(f"job not accepted: {code} {answer[:200]!r}")
    return str(json.loads(answer)["id"])


def delete_job(base: str, job_id: str) -> str:
    """DELETE the job; returns the status it had just before."""
    code, _, answer = http(f"{base}/api/analysis/{job_id}")
    status = json.loads(answer).get("status", "?") if code == 200 else f"HTTP {code}"
    code, _, answer = http(f"{base}/api/analysis/{job_id}", "DELETE")
    if code not in (200, 204):
        raise RuntimeError(f"DELETE refused: {code} {answer[:200]!r}")
    return str(status)


def job_done(client: redis.Redis, job_id: str) -> bool:
    job = JobStore(client).get(job_id)
    return job is not None and job["status"] in ("done", "failed")


def tally_job(client: redis.Redis, job_id: str, frame_step: int, video: int) -> JobTally:
    """Exact accounting: every kept frame should have exactly one result per type.

    Results are a HASH per type keyed by frame number, so a frame done twice (a lease that ran
    out) overwrites its own entry; a duplicate shows as an entry for a frame that should not
    have one, or a result filed under another frame or job than its own.
    """
    expected = set(range(0, video, frame_step))
    job = JobStore(client).get(job_id)
    lost, dup = {}, {}
    for t in job["types"] if job else JOB_TYPES:  # a job gone: every frame of ours is lost
        stored = client.hgetall(keys.job_results(job_id, t))
        frames = {int(k) for k in stored}
        misfiled = sum(1 for k, v in stored.items()
                       if (r := json.loads(v)).get("seq") != int(k) or r.get("stream") != job_id)
        lost[t] = len(expected - frames)
        dup[t] = len(frames - expected) + misfiled
    return JobTally(job_id, job["status"] if job else "missing", math.ceil(video / frame_step),
                    lost, dup, job["frames_total"] if job else None)
