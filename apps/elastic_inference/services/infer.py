"""``ei infer``: the inference worker of one type (the hot path).

pop batch -> validate and drop stale -> decode JPEGs at reduced size in a small thread pool ->
detector (OpenVINO, THROUGHPUT hint, async requests) -> publish result JSON with the untouched
JPEG in one pipelined round trip -> metrics. A side thread updates the rate gauges and the
worker heartbeat every second, so the hot loop never sleeps on a timer.
"""

from __future__ import annotations

import logging
import os
import re
import socket
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import cast

import cv2
import numpy as np
import numpy.typing as npt
import redis

from ..core import frame as frame_msg
from ..core.broker import OutputBroker
from ..core.errors import InvalidMessage
from ..core.metrics import CapacityWindow, RateWindow, WorkerMetrics, scale_ratio
from ..core.queue import DROP_REASONS, FrameQueue
from ..core.redisconn import REDIS_DOWN_ERRORS, Backoff, connect
from ..core.registry import WorkerRegistry
from ..core.result import Result
from ..core.runtime import ServiceRuntime, setup_logging
from ..core.settings import InferSettings, parse_settings
from ..engine.detector import Detector, load_detector

log = logging.getLogger(__name__)

POP_TIMEOUT = 1.0
STATS_INTERVAL = 1.0
_REDUCED = {1: cv2.IMREAD_COLOR, 2: cv2.IMREAD_REDUCED_COLOR_2, 4: cv2.IMREAD_REDUCED_COLOR_4,
            8: cv2.IMREAD_REDUCED_COLOR_8}


def reduction_for(w: int, h: int, input_size: tuple[int, int]) -> int:
    """Largest JPEG DCT reduction (1, 2, 4, 8) that keeps the frame at least model-input sized."""
    iw, ih = input_size
    factor = 1
    for f in (2, 4, 8):
        if w // f >= iw and h // f >= ih:
            factor = f
    return factor


def decode_jpeg(jpeg: bytes, reduction: int = 1) -> npt.NDArray[np.uint8]:
    """Decode to BGR, optionally at 1/2, 1/4 or 1/8 size; raise InvalidMessage if corrupt."""
    image = cv2.imdecode(np.frombuffer(jpeg, np.uint8), _REDUCED[reduction])
    if image is None or image.size == 0:
        raise InvalidMessage("JPEG could not be decoded")
    return cast(npt.NDArray[np.uint8], image)


def default_worker_id(infer_type: str) -> str:
    host = re.sub(r"[^A-Za-z0-9_.-]", "-", socket.gethostname())[:40]
    return f"{infer_type}-{host}-{os.getpid()}"


@dataclass
class _Decoded:
    frame: frame_msg.Frame
    image: npt.NDArray[np.uint8]


class InferWorker:
    """Pops frames of one type, runs the detector and publishes results until stopped."""

    def __init__(self, settings: InferSettings, client: redis.Redis, detector: Detector,
                 runtime: ServiceRuntime, worker_id: str | None = None) -> None:
        self.settings = settings
        self.client = client
        self.detector = detector
        self.runtime = runtime
        self.stop = runtime.stop
        self.worker_id = worker_id or default_worker_id(settings.type)
        self.queue = FrameQueue(client, settings.type)
        self.broker = OutputBroker(client, settings.out_maxlen, settings.results_retention)
        self.registry = WorkerRegistry(client, settings.type)
        self.metrics = WorkerMetrics(runtime.registry, settings.type, detector.model,
                                     detector.device)
        self.backoff = Backoff(f"infer[{settings.type}]")
        self.pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="decode")
        self.frames_done = 0
        self._infer_rate = RateWindow()
        self._capacity = CapacityWindow()
        self._type_drops = RateWindow()
        self._last_drop_total: int | None = None
        self._last_overflow: int | None = None
        self._lock = threading.Lock()

    # --- hot loop -------------------------------------------------------------------------

    def run(self) -> int:
        """Serve until the stop event or ``max_frames``; returns the process exit code."""
        stats = threading.Thread(target=self._stats_loop, name="infer-stats", daemon=True)
        stats.start()
        self.runtime.ready.set()
        log.info("worker %s serving type %r with model %s on %s", self.worker_id,
                 self.settings.type, self.detector.model, self.detector.device)
        try:
            while not self.stop.is_set():
                if self.settings.max_frames and self.frames_done >= self.settings.max_frames:
                    break
                try:
                    raw = self.queue.pop_batch(self._batch_limit(), POP_TIMEOUT)
                    self._redis_ok()
                except REDIS_DOWN_ERRORS as exc:
                    self.backoff.failed(exc, self.stop)
                    continue
                if raw:
                    self.process(raw)
        finally:
            self.stop.set()
            stats.join(timeout=5)
            self.pool.shutdown(wait=True)
            try:
                self.registry.remove(self.worker_id)
            except REDIS_DOWN_ERRORS:
                log.warning("could not unregister %s: Redis unavailable", self.worker_id)
            self.detector.close()
            log.info("worker %s stopped after %d frames", self.worker_id, self.frames_done)
        return 0

    def _batch_limit(self) -> int:
        if self.settings.max_frames:
            return max(1, min(self.settings.batch, self.settings.max_frames - self.frames_done))
        return self.settings.batch

    def process(self, raw: Sequence[bytes]) -> int:
        """Infer and publish one popped batch; returns how many frames were published."""
        started = time.monotonic()
        self.metrics.batch_size.observe(len(raw))
        frames = self._validate(raw)
        decoded = self._decode(frames)
        if not decoded:
            return 0
        t0 = time.monotonic()
        detections = self.detector.infer([d.image for d in decoded])
        self.metrics.inference_seconds.observe(time.monotonic() - t0)
        done = time.time()
        items = [
            (Result(stream=d.frame.stream, type=d.frame.type, seq=d.frame.seq,
                    ts_capture=d.frame.ts, ts_done=done, model=self.detector.model,
                    device=self.detector.device, w=d.frame.w, h=d.frame.h,
                    detections=tuple(dets)), d.frame.jpeg)
            for d, dets in zip(decoded, detections, strict=True)
        ]
        self._publish(items)
        published = time.time()
        for d in decoded:
            self.metrics.latency.observe(max(0.0, published - d.frame.ts))
        n = len(items)
        self.frames_done += n
        self.metrics.inferred.inc(n)
        with self._lock:
            self._infer_rate.add(n)
            self._capacity.add(n, time.monotonic() - started)
        return n

    def _validate(self, raw: Sequence[bytes]) -> list[frame_msg.Frame]:
        frames: list[frame_msg.Frame] = []
        now = time.time()
        for message in raw:
            try:
                f = frame_msg.decode(message)
                if f.type != self.settings.type:
                    raise InvalidMessage(f"frame of type {f.type!r} in the "
                                         f"{self.settings.type!r} queue")
            except InvalidMessage as exc:
                log.warning("dropping invalid frame: %s", exc)
                self._drop("invalid")
                continue
            if self.settings.max_age and now - f.ts > self.settings.max_age:
                self._drop("stale")
                continue
            frames.append(f)
        return frames

    def _decode(self, frames: Sequence[frame_msg.Frame]) -> list[_Decoded]:
        size = self.detector.input_size

        def one(f: frame_msg.Frame) -> _Decoded | None:
            try:
                return _Decoded(f, decode_jpeg(f.jpeg, reduction_for(f.w, f.h, size)))
            except InvalidMessage as exc:
                log.warning("dropping frame %s/%d: %s", f.stream, f.seq, exc)
                return None

        results = list(self.pool.map(one, frames)) if len(frames) > 1 else [one(f) for f in frames]
        good = [d for d in results if d is not None]
        if len(good) < len(frames):
            self._drop("invalid", len(frames) - len(good))
        return good

    def _drop(self, reason: str, n: int = 1) -> None:
        self.metrics.dropped[reason].inc(n)
        try:
            self.queue.count_drops(reason, n)
        except REDIS_DOWN_ERRORS as exc:
            log.debug("drop count not recorded in Redis: %s", exc)

    def _publish(self, items: list[tuple[Result, bytes]]) -> None:
        """Publish, retrying through a Redis outage (these frames are already popped)."""
        while True:
            try:
                self.broker.publish(items)
                self._redis_ok()
                return
            except REDIS_DOWN_ERRORS as exc:
                if self.stop.is_set():
                    log.warning("stopping with %d unpublished results", len(items))
                    return
                self.backoff.failed(exc, self.stop)

    def _redis_ok(self) -> None:
        if self.backoff.succeeded():
            self.metrics.reconnects.inc()

    # --- once a second ---------------------------------------------------------------------

    def _stats_loop(self) -> None:
        while not self.stop.wait(STATS_INTERVAL):
            try:
                self.update_stats()
            except REDIS_DOWN_ERRORS as exc:
                log.debug("stats skipped: Redis unavailable (%s)", exc)

    def update_stats(self) -> None:
        """Refresh gauges and the heartbeat from Redis (queue stats, peer count)."""
        stats = self.queue.stats()
        total_drops = sum(stats.drops[r] for r in DROP_REASONS)
        new_overflow = 0
        if self._last_overflow is not None:
            new_overflow = max(0, stats.drops["overflow"] - self._last_overflow)
        self._last_overflow = stats.drops["overflow"]
        with self._lock:
            infer_fps = self._infer_rate.rate()
            capacity = self._capacity.capacity()
            if self._last_drop_total is not None and total_drops >= self._last_drop_total:
                self._type_drops.add(total_drops - self._last_drop_total)
            self._last_drop_total = total_drops
            type_drop_fps = self._type_drops.rate()
        info = {"type": self.settings.type, "model": self.detector.model,
                "device": self.detector.device, "infer_fps": round(infer_fps, 2),
                "capacity_fps": round(capacity, 2), "frames": self.frames_done}
        self.registry.beat(self.worker_id, info)
        workers = max(1, self.registry.count())
        m = self.metrics
        m.infer_fps.set(infer_fps)
        m.capacity_fps.set(capacity)
        m.drop_fps.set(type_drop_fps / workers)
        m.scale_ratio.set(scale_ratio(infer_fps, type_drop_fps, workers, capacity))
        m.queue_length.set(stats.length)
        m.active_workers.set(workers)
        if new_overflow:
            # Producers trim the queue, not workers: each worker counts its share of the
            # type's overflow so the sum over pods is the type's total.
            m.dropped["overflow"].inc(new_overflow / workers)


def main(argv: list[str]) -> int:
    settings = parse_settings(InferSettings, argv, prog="ei infer")
    setup_logging(settings.log_level)
    runtime = ServiceRuntime("infer")
    runtime.install_signal_handlers()
    runtime.serve_health(settings.metrics_host, settings.metrics_port)
    detector = load_detector(settings.type, settings.model_dir, settings.device,
                             settings.model or None, settings.threshold or None)
    client = connect(settings.redis_url, socket_timeout=POP_TIMEOUT + 10)
    try:
        return InferWorker(settings, client, detector, runtime).run()
    finally:
        runtime.close()
        client.close()
