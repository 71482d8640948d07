"""The inference worker's hot loop: pop, validate, decode, infer, publish with the next pop."""

from __future__ import annotations

import logging
import os
import re
import socket
import time
from collections import deque
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

from ...core import frame as frame_msg
from ...core.broker import OutputBroker
from ...core.errors import InvalidMessage
from ...core.jobs import JobStore
from ...core.leased import LeasedQueue
from ...core.metrics import WorkerMetrics
from ...core.queue import FrameQueue
from ...core.redisconn import REDIS_DOWN_ERRORS, Backoff, RedisClient
from ...core.registry import WorkerRegistry
from ...core.result import Detection, Result
from ...core.runtime import Progress, ServiceRuntime, name_os_thread
from ...core.settings import InferSettings
from ...engine.detector import Detector, Done, Prepared
from ...engine.preprocess import decode_jpeg, reduction_for
from .publisher import Published, ResultWriter
from .stats import Counters, WorkerStats

log = logging.getLogger(__name__)

POP_TIMEOUT = 1.0


def default_worker_id(infer_type: str) -> str:
    host = re.sub(r"[^A-Za-z0-9_.-]", "-", socket.gethostname())[:40]
    return f"{infer_type}-{host}-{os.getpid()}"


@dataclass
class _InFlight:
    """A frame submitted to the detector, waiting for its (and its elders') detections."""

    frame: frame_msg.Frame
    submitted: float
    lease: str | None  # job-queue message id; None for a live frame
    detections: list[Detection] | None = None


class InferWorker:
    """Pops frames of one type, runs the detector and publishes results until stopped."""

    def __init__(self, settings: InferSettings, client: RedisClient, detector: Detector,
                 runtime: ServiceRuntime, worker_id: str | None = None) -> None:
        self.settings = settings
        self.client = client
        self.detector = detector
        self.runtime = runtime
        self.stop = runtime.stop
        self.worker_id = worker_id or default_worker_id(settings.type)
        self.queue = FrameQueue(client, settings.type)
        self.job_queue = LeasedQueue.for_type(client, settings.type)
        self.jobs = JobStore(client)
        self.broker = OutputBroker(client, settings.out_maxlen, settings.results_retention)
        self.frames = self.broker.frames
        self.registry = WorkerRegistry(client, settings.type)
        self.metrics = WorkerMetrics(runtime.registry, settings.type, detector.model,
                                     detector.device)
        self.backoff = Backoff(f"infer[{settings.type}]")
        self.progress = Progress(settings.stall_timeout)
        runtime.healthy = self.healthy
        self.counters = Counters()
        self.stats = WorkerStats(self.worker_id, settings.type, detector.model, detector.device,
                                 self.queue, self.job_queue, self.registry, self.metrics,
                                 self.counters)
        # JPEG decoding is the other big cost beside inference: one thread per core, named
        # for the OS like the runtime's threads (`ei bench` sums the worker's CPU by name).
        self.pool = ThreadPoolExecutor(max_workers=max(2, min(4, os.cpu_count() or 2)),
                                       thread_name_prefix="decode", initializer=name_os_thread,
                                       initargs=("infer-decode",))
        # The writer backs off on its own: at maxmemory pops still succeed while publishing is
        # refused, and a shared Backoff would be reset by every pop.
        self.writer = ResultWriter(client, self.broker, self.jobs, self.job_queue, self.metrics,
                                   Backoff(f"infer[{settings.type}] publishing"), self.progress,
                                   self.stop, self.counters.published)
        # Frames popped and decoded ahead: EI_BATCH, but at least three model batches (the
        # request being filled and those in flight), else a batched model's requests wait on
        # the decode pool: BlazeFace (8 a request) ran 998 frames/s 8 ahead, 1,100 24 ahead.
        self.ahead = max(settings.batch, 3 * detector.batch)
        # Topped up a model batch at a time (at least half of EI_BATCH): BlazeFace refilled
        # from 12 to 24 at once ran 11 % slower than from 16 to 24 (six alternating pairs,
        # 2 cores), with redis-server at 0.12 ms of CPU a frame against 0.07 and the cores
        # idle 10 % of the time against 8: a refill of 12 to 24 frames is one reply of 1.4 to
        # 2.8 MB, read while the decode pool runs low.
        self.refill = max(detector.batch, settings.batch // 2)
        # Finished frames in pop order, published with the next pop (``_pop_publishing``).
        self._unpublished: list[Published] = []
        self._taken = 0  # validated frames taken into the pipeline (``max_frames`` counts these)
        self._decoding: deque[tuple[frame_msg.Frame, Future[Prepared], str | None]] = deque()
        self._inflight: dict[int, _InFlight] = {}  # by tag; insertion order is pop order
        self._next_tag = 0

    @property
    def frames_done(self) -> int:
        """Frames published so far."""
        return self.counters.frames_done

    # --- hot loop -------------------------------------------------------------------------

    def run(self) -> int:
        """Serve until the stop event or ``max_frames``; returns the process exit code."""
        stats = self.runtime.start_thread(lambda: self.stats.loop(self.stop), "infer-stats")
        self.runtime.ready.set()
        log.info("worker %s serving type %r with model %s on %s", self.worker_id,
                 self.settings.type, self.detector.model, self.detector.device)
        try:
            while not self.stop.is_set() and not self._limit_reached():
                self.step()
            self.drain()
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

    def healthy(self) -> bool:
        """False when frames wait (in hand or in Redis) and nothing moved for a while."""
        busy = bool(self._decoding or self._inflight or self._unpublished
                    or self.stats.waiting)
        return not self.progress.stalled(busy)

    def _limit_reached(self) -> bool:
        return bool(self.settings.max_frames) and self._taken >= self.settings.max_frames

    def step(self) -> None:
        """One turn: top up the decode pool, then move one frame through the detector."""
        started = time.monotonic()
        if self.ahead - len(self._decoding) >= self.refill:
            idle = not self._decoding and not self._inflight
            if not self._top_up(block=idle) and idle:
                return  # nothing came: not busy time
            if idle:
                started = time.monotonic()
        completed = 0
        if self._decoding:
            completed = self._infer_next()
        elif self._inflight:
            completed = self._complete(self.detector.flush())
        self.counters.worked(completed, time.monotonic() - started)

    def drain(self) -> None:
        """Finish and publish every frame already popped (stop or ``max_frames``). Busy time
        like any other: with a request per frame in flight, a short run's frames may all
        complete here."""
        started, completed = time.monotonic(), 0
        while self._decoding:
            completed += self._infer_next()
        completed += self._complete(self.detector.flush())
        self._publish()
        self.counters.worked(completed, time.monotonic() - started)

    def _publish(self) -> None:
        """Publish what finished, alone (before waiting on an empty queue, and at the end)."""
        items, self._unpublished = self._unpublished, []
        if items:
            self.writer(items)

    def _pop_publishing(self, room: int) -> list[bytes]:
        """Up to ``room`` frames without waiting; what finished since the last pop is published
        in the same round trip. A publishing thread of its own cost a round trip a batch and
        left the cores idle more often: BlazeFace's worker idled about a point less this way,
        in 18 of 18 alternating pairs (doc/benchmarks.md). A refused publish (a full Redis) is
        retried alone with backoff before the loop goes on; an outage keeps the results for
        the next turn."""
        items, self._unpublished = self._unpublished, []
        if not items:
            return self.queue.pop_nowait(room)
        pipe = self.client.pipeline(transaction=False)
        try:
            self.writer.stage(items, pipe)
            self.queue.pop_pipelined(pipe, room)
            replies = pipe.execute(raise_on_error=False)
        except BaseException:
            self._unpublished[:0] = items
            raise
        popped = replies.pop()
        if any(isinstance(r, Exception) for r in replies):
            self.writer(items)
        else:
            self.writer.record(items)
        if isinstance(popped, Exception):
            raise popped
        return list(popped) if popped else []

    def _top_up(self, block: bool) -> bool:
        """Pop up to the free room (blocking only when idle) and start decoding; True if any."""
        room = self.ahead - len(self._decoding)
        if self.settings.max_frames:
            room = min(room, self.settings.max_frames - self._taken)
        if room <= 0:
            return False
        try:
            raw = self._pop_publishing(room)
            leased = [] if raw else self.job_queue.lease(room, self.settings.lease_timeout)
            if block and not raw and not leased:
                self._publish()
                raw = self.queue.pop_batch(room, POP_TIMEOUT)
            taken = self._fetch(self._validate([(None, m) for m in raw] + list(leased)))
            self._redis_ok()
        except REDIS_DOWN_ERRORS as exc:
            self.progress.moved()  # waiting on Redis, not wedged
            self.backoff.failed(exc, self.stop)
            return False
        self.progress.moved()  # the loop turns (frames taken, or the queues were empty)
        if not raw and not leased:
            return False
        self.metrics.batch_size.observe(len(raw) + len(leased))
        size = self.detector.input_size
        for f, lease, jpeg in taken:
            reduction = reduction_for(f.w, f.h, size)
            self._decoding.append((f, self.pool.submit(self._prepare, jpeg, reduction),
                                   lease))
            self._taken += 1
        return True

    def _prepare(self, jpeg: bytes, reduction: int) -> Prepared:
        """Decode-pool task: JPEG -> model input tensor (raises InvalidMessage if corrupt)."""
        return self.detector.prepare(decode_jpeg(jpeg, reduction))

    def _infer_next(self) -> int:
        """Submit the oldest decoded frame; returns how many frames completed meanwhile."""
        f, future, lease = self._decoding.popleft()
        try:
            prepared = future.result()
        except InvalidMessage as exc:
            log.warning("dropping frame %s/%d: %s", f.stream, f.seq, exc)
            self._drop("invalid")
            self._taken -= 1
            if lease is not None:
                self._ack_quietly([lease])  # a corrupt job frame would fail again anywhere
            return 0
        tag = self._next_tag
        self._next_tag += 1
        self._inflight[tag] = _InFlight(f, time.monotonic(), lease)
        return self._complete(self.detector.submit(prepared, tag))

    def _complete(self, done: Sequence[Done]) -> int:
        """Record finished detections; the ones now in pop order wait for the next pop."""
        if not done:
            return 0
        now = time.monotonic()
        for tag, detections in done:
            item = self._inflight[tag]
            item.detections = detections
            self.metrics.inference_seconds.observe(now - item.submitted)
        ready: list[Published] = []
        finished = time.time()
        while self._inflight:
            tag, item = next(iter(self._inflight.items()))
            if item.detections is None:
                break
            del self._inflight[tag]
            f = item.frame
            ready.append((Result(stream=f.stream, type=f.type, seq=f.seq, ts_capture=f.ts,
                                 ts_done=finished, model=self.detector.model,
                                 device=self.detector.device, w=f.w, h=f.h,
                                 detections=tuple(item.detections)), f, item.lease))
        self._unpublished += ready
        return len(done)

    def _validate(self, messages: Sequence[tuple[str | None, bytes]]
                  ) -> list[tuple[frame_msg.Frame, str | None]]:
        """Frames to infer, each with its job lease (None for a live frame).

        An invalid message is counted and dropped (a job frame also acknowledged: it would
        fail on any worker); a live frame older than ``max_age`` is dropped as stale, a job
        frame never is.
        """
        frames: list[tuple[frame_msg.Frame, str | None]] = []
        bad: list[str] = []
        now = time.time()
        for lease, message in messages:
            try:
                f = frame_msg.decode(message, self.settings.max_pixels)
                if f.type != self.settings.type:
                    raise InvalidMessage(f"frame of type {f.type!r} in the "
                                         f"{self.settings.type!r} {'job ' if lease else ''}queue")
            except InvalidMessage as exc:
                log.warning("dropping invalid %s: %s",
                            "frame" if lease is None else f"job frame {lease}", exc)
                self._drop("invalid")
                if lease is not None:
                    bad.append(lease)
                continue
            if lease is None and self.settings.max_age and now - f.ts > self.settings.max_age:
                self._drop("stale")
                continue
            frames.append((f, lease))
        if bad:
            self._ack_quietly(bad)
        return frames

    def _fetch(self, frames: list[tuple[frame_msg.Frame, str | None]]
               ) -> list[tuple[frame_msg.Frame, str | None, bytes]]:
        """``frames`` each with its lease and its JPEG: its own, or the one it refers to in the
        frame store, fetched in one round trip. One the store no longer holds is dropped as
        stale (it waited longer than the store keeps frames); one that is not a JPEG of its
        size as invalid."""
        wanted = [f for f, _ in frames if f.ref and not f.jpeg]
        jpegs = iter(self.frames.fetch([(f.stream, f.ref) for f in wanted]) if wanted else ())
        out: list[tuple[frame_msg.Frame, str | None, bytes]] = []
        for f, lease in frames:
            if not f.ref or f.jpeg:
                out.append((f, lease, f.jpeg))
                continue
            jpeg = next(jpegs)
            if jpeg is None:
                self._drop("stale")
                continue
            try:
                frame_msg.check_fetched(f, jpeg, self.settings.max_pixels)
            except InvalidMessage as exc:
                log.warning("dropping frame %s/%d: %s", f.stream, f.seq, exc)
                self._drop("invalid")
                continue
            out.append((f, lease, jpeg))
        return out

    def _ack_quietly(self, leases: Sequence[str]) -> None:
        """Acknowledge job frames that will never have a result; an outage only delays them."""
        try:
            self.job_queue.ack(leases)
        except REDIS_DOWN_ERRORS as exc:
            log.debug("ack deferred (the lease will run out): %s", exc)

    def _drop(self, reason: str, n: int = 1) -> None:
        self.metrics.dropped[reason].inc(n)
        try:
            self.queue.count_drops(reason, n)
        except REDIS_DOWN_ERRORS as exc:
            log.debug("drop count not recorded in Redis: %s", exc)

    def _redis_ok(self) -> None:
        if self.backoff.succeeded():
            self.metrics.reconnects.inc()

    def update_stats(self) -> None:
        """Refresh the gauges and the heartbeat now (the stats thread does it every second)."""
        self.stats.update()
