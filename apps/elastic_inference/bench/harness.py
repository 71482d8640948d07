"""Drives real ``ei infer`` processes through Redis and reads back what they published.

Frames are pushed as a stream service pushes them: each JPEG once in the stream's frame store
(``ei:frames:{stream}``) and a v2 reference in the type's queue, so the worker's figures
include fetching the JPEGs. Throughput is measured on a queue filled before the worker looks
at it (so pushing costs the worker nothing), as the slope of published results over time
between 10 % and 95 % done; model load and warm-up fall outside that window. Latency and
density feed a live worker at a paced rate from a producer thread, as stream services would.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import redis

from ..core import frame as frame_msg
from ..core import keys
from ..core.errors import EIError
from ..core.framestore import DEFAULT_KEEP, FrameStore, store_length
from ..core.queue import DROP_REASONS, FrameQueue, QueueStats
from ..core.registry import WorkerRegistry
from ..core.result import decode_result
from ..core.text import as_text
from .probes import cpu_by_name, percentile, proc_sample, thread_cpu

log = logging.getLogger(__name__)

START_TIMEOUT = 120.0
STOP_TIMEOUT = 30.0


class WorkerProcess:
    """One ``ei infer`` child with the bench's settings; nothing from the caller's EI_* env."""

    def __init__(self, redis_url: str, infer_type: str, model: str, model_dir: Path,
                 device: str, max_age: float, max_frames: int = 0, precision: str = "") -> None:
        self.type = infer_type
        args = ["infer", "--type", infer_type, "--model", model, "--model-dir", str(model_dir),
                "--device", device, "--redis-url", redis_url, "--metrics-host", "127.0.0.1",
                "--metrics-port", "0", "--max-age", str(max_age),
                "--max-frames", str(max_frames), "--log-level", "WARNING",
                *(["--precision", precision] if precision else [])]
        env = {k: v for k, v in os.environ.items() if not k.startswith("EI_")}
        self.proc = subprocess.Popen([sys.executable, "-m", "elastic_inference.cli", *args],
                                     env=env)
        self.pid = self.proc.pid
        self.peak_rss_mb = 0.0

    def sample(self) -> float | None:
        """CPU seconds used so far (None once it exited); tracks the peak resident memory."""
        s = proc_sample(self.pid)
        if s is None:
            return None
        self.peak_rss_mb = max(self.peak_rss_mb, s.peak_rss_mb)
        return s.cpu_seconds

    def wait_registered(self, client: redis.Redis, timeout: float = START_TIMEOUT) -> None:
        """Until the worker's first heartbeat (model compiled, loop running)."""
        registry = WorkerRegistry(client, self.type)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise EIError(f"ei infer --type {self.type} exited with {self.proc.returncode}")
            if registry.count() > 0:
                self.sample()
                return
            time.sleep(0.1)
        raise EIError(f"ei infer --type {self.type} did not start within {timeout:.0f} s")

    def stop(self, exit_wait: float = 0.0) -> int:
        """Wait ``exit_wait`` s for it to exit by itself (``max_frames``), else SIGTERM (drain);
        returns the exit code."""
        try:
            return self.proc.wait(exit_wait) if exit_wait else self._terminate()
        except subprocess.TimeoutExpired:
            return self._terminate()

    def _terminate(self) -> int:
        if self.proc.poll() is None:
            self.sample()
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise EIError(f"ei infer --type {self.type} did not stop on SIGTERM") from None


#: (stream id, JPEGs, their (w, h)) for :func:`fill_queue`.
FrameGroup = tuple[str, Sequence[bytes], tuple[int, int]]


def fill_queue(client: redis.Redis, infer_type: str, groups: Sequence[FrameGroup],
               by_ref: bool = True) -> None:
    """Replace the type's queue with one frame message per JPEG, group after group.

    With ``by_ref`` each JPEG goes to its stream's frame store, which keeps the whole backlog
    (a stream service keeps EI_FRAME_KEEP seconds, but a pre-filled queue must not go stale),
    and the queue gets v2 references; without, v1 messages carry the JPEG (the original
    design's baseline). The queue's bound is bypassed on purpose, and the messages are staged
    under another key and moved in with one RENAME, so a worker sees the whole backlog at once.
    """
    staging = f"ei:bench:staging:{infer_type}"
    client.delete(staging)
    store = FrameStore(client)
    now = time.time()
    pipe = client.pipeline(transaction=False)
    for stream, jpegs, (w, h) in groups:
        client.delete(keys.results(stream), keys.out(stream), keys.frames(stream))
        for i, jpeg in enumerate(jpegs):
            ref = store.add(stream, jpeg, len(jpegs)) if by_ref else ""
            pipe.rpush(staging, frame_msg.Frame(stream=stream, type=infer_type, seq=i, ts=now,
                                                w=w, h=h, jpeg=b"" if ref else jpeg,
                                                ref=ref).encode())
            if i % 64 == 63:
                pipe.execute()
    pipe.execute()
    client.rename(staging, keys.queue(infer_type))


@dataclass(frozen=True)
class Drain:
    """What a worker showed while draining a pre-filled queue."""

    fps: float
    cpu_ms_per_frame: float
    redis_cpu_ms_per_frame: float
    published: int
    #: the worker's CPU a frame by thread name (``probes.thread_cpu``)
    threads_ms_per_frame: dict[str, float] = field(default_factory=dict)


def measure_drain(client: redis.Redis, worker: WorkerProcess, streams: Sequence[str],
                  totals: Sequence[int], redis_pid: int | None,
                  timeout: float = 600.0) -> list[Drain]:
    """Sample published counts and CPU until every stream has its total; one Drain each.

    Streams are drained one after another (the queue holds them in order), so each stream's
    window is the part of the run where its own results were appearing.
    """
    samples: list[_Sample] = []
    deadline = time.monotonic() + timeout
    while True:
        counts = [int(client.xlen(keys.results(s))) for s in streams]
        cpu = worker.sample()
        rcpu = proc_sample(redis_pid) if redis_pid else None
        samples.append((time.perf_counter(), counts, cpu or 0.0,
                        rcpu.cpu_seconds if rcpu else 0.0, thread_cpu(worker.pid)))
        if all(c >= t for c, t in zip(counts, totals, strict=True)):
            break
        if cpu is None or worker.proc.poll() is not None:
            raise EIError(f"worker exited with {worker.proc.poll()} after publishing "
                          f"{counts} of {list(totals)} frames")
        if time.monotonic() > deadline:
            raise EIError(f"worker published {counts} of {list(totals)} frames in "
                          f"{timeout:.0f} s")
        time.sleep(0.05)
    out = []
    for i, total in enumerate(totals):
        lo_at = next(k for k, s in enumerate(samples) if s[1][i] >= 0.1 * total)
        hi_at = next(k for k, s in enumerate(samples) if s[1][i] >= 0.95 * total)
        lo, hi = samples[lo_at], samples[hi_at]
        frames = hi[1][i] - lo[1][i]
        seconds = hi[0] - lo[0]
        if frames <= 0 or seconds <= 0:
            raise EIError(f"too few samples to time stream {streams[i]}; use more frames")
        out.append(Drain(fps=frames / seconds,
                         cpu_ms_per_frame=1000 * (hi[2] - lo[2]) / frames,
                         redis_cpu_ms_per_frame=1000 * (hi[3] - lo[3]) / frames,
                         published=hi[1][i],
                         threads_ms_per_frame=by_thread(samples[lo_at:hi_at + 1], i)))
    return out


#: One poll of a drain: time, published counts, worker CPU, redis-server CPU, worker threads.
_Sample = tuple[float, list[int], float, float, dict[str, tuple[str, float]]]


def by_thread(window: Sequence[_Sample], stream: int) -> dict[str, float]:
    """The worker's CPU ms a frame by thread name over ``window``, cut at its last sample in
    which every thread of its first was still alive: a worker ends its decode threads once
    its last frame is out (``max_frames``), and /proc then forgets their CPU."""
    first = window[0]
    end = next(s for s in reversed(window) if first[4].keys() <= s[4].keys())
    frames = end[1][stream] - first[1][stream]
    if frames <= 0:
        return {}
    return {name: 1000 * cpu / frames for name, cpu in cpu_by_name(first[4], end[4]).items()}


@dataclass(frozen=True)
class LivePhase:
    """A paced load on a live worker: ages of what was published, and what was lost."""

    offered_fps: float
    pushed: int
    published: int
    p50_ms: float
    p99_ms: float
    max_age_ms: float
    drops: int
    max_queue: int


class Producer(threading.Thread):
    """Pushes frames for several streams at a steady total rate, as ``ei stream`` would: the
    JPEG in the stream's frame store (kept as long as EI_FRAME_KEEP's default), then a reference."""

    def __init__(self, client: redis.Redis, infer_type: str, streams: Sequence[str],
                 total_fps: float, jpegs: Sequence[bytes], size: tuple[int, int],
                 seconds: float, maxlen: int = 16) -> None:
        super().__init__(name="bench-producer", daemon=True)
        self.queue = FrameQueue(client, infer_type, maxlen)
        self.store = FrameStore(client)
        self.keep = store_length(total_fps / len(streams), DEFAULT_KEEP)
        self.type = infer_type
        self.streams = list(streams)
        self.interval = 1.0 / total_fps
        self.jpegs = jpegs
        self.size = size
        self.seconds = seconds
        self.pushed = 0
        self.max_queue = 0
        self.stop = threading.Event()  # ends the load early

    def run(self) -> None:
        start = time.perf_counter()
        n = 0
        while ((due := start + n * self.interval) < start + self.seconds
               and not self.stop.is_set()):
            delay = due - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            stream = self.streams[n % len(self.streams)]
            captured = time.time()
            ref = self.store.add(stream, self.jpegs[n % len(self.jpegs)], self.keep)
            message = frame_msg.Frame(stream=stream, type=self.type, seq=n // len(self.streams),
                                      ts=captured, w=self.size[0], h=self.size[1], jpeg=b"",
                                      ref=ref).encode()
            self.max_queue = max(self.max_queue, self.queue.push(message).length)
            n += 1
        self.pushed = n


def _drops(before: QueueStats, after: QueueStats) -> int:
    return sum(after.drops[r] - before.drops[r] for r in DROP_REASONS)


def run_live(client: redis.Redis, infer_type: str, streams: Sequence[str], total_fps: float,
             jpegs: Sequence[bytes], size: tuple[int, int], seconds: float) -> LivePhase:
    """Feed a live worker for ``seconds``, let it drain, then read every published age."""
    queue = FrameQueue(client, infer_type)
    client.delete(*[k for s in streams for k in (keys.results(s), keys.out(s), keys.frames(s))])
    before = queue.stats()
    producer = Producer(client, infer_type, streams, total_fps, jpegs, size, seconds)
    producer.start()
    producer.join()
    deadline = time.monotonic() + 10
    while queue.length() and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)  # the last batch's publish
    after = queue.stats()
    ages: list[float] = []
    for s in streams:
        for entry_id, fields in client.xrange(keys.results(s)):
            published_ms = int(as_text(entry_id).split("-", 1)[0])
            result = decode_result(fields[b"result"])
            ages.append(published_ms - 1000 * result.ts_capture)
    return LivePhase(offered_fps=producer.pushed / seconds, pushed=producer.pushed,
                     published=len(ages), p50_ms=percentile(ages, 50),
                     p99_ms=percentile(ages, 99), max_age_ms=max(ages, default=0.0),
                     drops=_drops(before, after), max_queue=producer.max_queue)
