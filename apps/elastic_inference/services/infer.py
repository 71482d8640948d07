"""``ei infer``: the inference worker of one type (the hot path).

Three stages overlap, so on a small CPU every core stays busy:

    Redis pop -> validate, drop stale (pop time) -> decode pool: JPEG decoded at reduced size
    and resized to the model input -> main thread: submit to OpenVINO (async requests,
    THROUGHPUT hint), results taken back in pop order -> publisher thread: result JSON plus the
    untouched JPEG, everything waiting published in one pipelined round trip.

The main thread tops the decode pool up with a non-blocking pop whenever fewer than half a
batch is in hand, and blocks on Redis only when it has nothing else to do. On SIGTERM it stops
popping and finishes the frames it holds.

Frames of analysis jobs come from the type's lossless job queue, only when the live queue is
empty (live frames are fresher and may be dropped; job frames wait). They are leased, never
dropped as stale, and acknowledged only after their result is stored with the job, so a worker
killed while holding some leaves them to another worker once the lease runs out.

A side thread refreshes the rate gauges and the heartbeat every second, so the hot loop never
sleeps on a timer.

Redis errors that pass (an outage, ``maxmemory``, a failover: ``REDIS_DOWN_ERRORS``) are retried
with backoff by every thread; any other exception in the publisher or stats thread ends the
process (``ServiceRuntime.start_thread``), and ``/healthz`` fails when frames wait and nothing
has moved for ``EI_STALL_TIMEOUT`` seconds.
"""

from __future__ import annotations

import logging
import os
import queue
import re
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

import redis

from ..core import frame as frame_msg
from ..core.broker import OutputBroker
from ..core.errors import InvalidMessage
from ..core.jobs import JobStore
from ..core.leased import LeasedQueue
from ..core.metrics import CapacityWindow, RateWindow, WorkerMetrics, scale_ratio
from ..core.queue import DROP_REASONS, FrameQueue
from ..core.redisconn import REDIS_DOWN_ERRORS, Backoff, connect
from ..core.registry import WorkerRegistry
from ..core.result import Detection, Result
from ..core.runtime import Progress, ServiceRuntime, setup_logging
from ..core.settings import InferSettings, parse_settings
from ..engine.detector import Detector, Done, Prepared, load_detector
from ..engine.preprocess import decode_jpeg, reduction_for

log = logging.getLogger(__name__)

POP_TIMEOUT = 1.0
STATS_INTERVAL = 1.0
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


#: A finished frame: its result, the original JPEG, and its job-queue lease (None when live).
Published = tuple[Result, bytes, str | None]


@dataclass
class _Publisher:
    """Publishes results on its own thread, batching whatever queued up meanwhile.

    The bounded hand-over queue is the back-pressure: if Redis stalls, ``put`` blocks the
    main thread instead of piling up results in memory. Neither ``put`` nor ``close`` waits on
    a thread that is gone (it died, and the runtime is already stopping the process).
    """

    publish: Callable[[list[Published]], None]
    max_batch: int
    _queue: queue.Queue[list[Published] | None] = field(
        default_factory=lambda: queue.Queue(maxsize=4))
    _thread: threading.Thread | None = None

    def start(self, start_thread: Callable[[Callable[[], None], str], threading.Thread]
              ) -> None:
        self._thread = start_thread(self._run, "infer-publish")

    def pending(self) -> int:
        return self._queue.qsize()

    def put(self, items: list[Published]) -> None:
        if not self._offer(items):
            log.warning("publisher thread gone: %d results not published", len(items))

    def close(self) -> None:
        """Publish what is queued, then stop the thread."""
        if self._thread is not None:
            self._offer(None)
            self._thread.join()
            self._thread = None

    def _offer(self, item: list[Published] | None) -> bool:
        """Queue ``item``, waiting while the queue is full and the thread lives."""
        while self._thread is not None and self._thread.is_alive():
            try:
                self._queue.put(item, timeout=0.5)
                return True
            except queue.Full:
                continue
        return False

    def _run(self) -> None:
        closing = False
        while not closing:
            first = self._queue.get()
            if first is None:
                return
            batch = list(first)
            while len(batch) < self.max_batch:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    closing = True
                    break
                batch += more
            self.publish(batch)


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
        self.job_queue = LeasedQueue.for_type(client, settings.type)
        self.jobs = JobStore(client)
        self.broker = OutputBroker(client, settings.out_maxlen, settings.results_retention)
        self.registry = WorkerRegistry(client, settings.type)
        self.metrics = WorkerMetrics(runtime.registry, settings.type, detector.model,
                                     detector.device)
        self.backoff = Backoff(f"infer[{settings.type}]")
        # Its own for writes: at maxmemory pops still succeed while publishing is refused, and
        # a shared one would be reset by every pop (a log line per try, no growing delay).
        self.publish_backoff = Backoff(f"infer[{settings.type}] publishing")
        self.progress = Progress(settings.stall_timeout)
        self._waiting = 0  # frames in the type's queues at the last stats refresh
        runtime.healthy = self.healthy
        # JPEG decoding is the other big cost beside inference: one thread per core.
        self.pool = ThreadPoolExecutor(max_workers=max(2, min(4, os.cpu_count() or 2)),
                                       thread_name_prefix="decode")
        self.publisher = _Publisher(self._publish, max(8, 2 * settings.batch))
        self.frames_done = 0  # published
        self._taken = 0  # validated frames taken into the pipeline (``max_frames`` counts these)
        self._decoding: deque[tuple[frame_msg.Frame, Future[Prepared], str | None]] = deque()
        self._inflight: dict[int, _InFlight] = {}  # by tag; insertion order is pop order
        self._next_tag = 0
        self._infer_rate = RateWindow()
        self._capacity = CapacityWindow()
        self._type_drops = RateWindow()
        self._last_drop_total: int | None = None
        self._last_overflow: int | None = None
        self._lock = threading.Lock()

    # --- hot loop -------------------------------------------------------------------------

    def run(self) -> int:
        """Serve until the stop event or ``max_frames``; returns the process exit code."""
        stats = self.runtime.start_thread(self._stats_loop, "infer-stats")
        self.publisher.start(self.runtime.start_thread)
        self.runtime.ready.set()
        log.info("worker %s serving type %r with model %s on %s", self.worker_id,
                 self.settings.type, self.detector.model, self.detector.device)
        try:
            while not self.stop.is_set() and not self._limit_reached():
                self.step()
            self.drain()
        finally:
            self.publisher.close()
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
        busy = bool(self._decoding or self._inflight or self.publisher.pending()
                    or self._waiting)
        return not self.progress.stalled(busy)

    def _limit_reached(self) -> bool:
        return bool(self.settings.max_frames) and self._taken >= self.settings.max_frames

    def step(self) -> None:
        """One turn: top up the decode pool, then move one frame through the detector."""
        started = time.monotonic()
        if len(self._decoding) <= self.settings.batch // 2:
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
        with self._lock:
            self._capacity.add(completed, time.monotonic() - started)

    def drain(self) -> None:
        """Finish every frame already popped (stop or ``max_frames``); publishing follows."""
        while self._decoding:
            self._infer_next()
        self._complete(self.detector.flush())

    def _top_up(self, block: bool) -> bool:
        """Pop up to the free room (blocking only when idle) and start decoding; True if any."""
        room = self.settings.batch - len(self._decoding)
        if self.settings.max_frames:
            room = min(room, self.settings.max_frames - self._taken)
        if room <= 0:
            return False
        try:
            raw = self.queue.pop_nowait(room)
            leased = [] if raw else self.job_queue.lease(room, self.settings.lease_timeout)
            if block and not raw and not leased:
                raw = self.queue.pop_batch(room, POP_TIMEOUT)
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
        taken = [(f, None) for f in self._validate(raw)] + self._validate_leased(leased)
        for f, lease in taken:
            reduction = reduction_for(f.w, f.h, size)
            self._decoding.append((f, self.pool.submit(self._prepare, f.jpeg, reduction),
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
        """Record finished detections; hand the ones now in pop order to the publisher."""
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
                                 detections=tuple(item.detections)), f.jpeg, item.lease))
        if ready:
            self.publisher.put(ready)
        return len(done)

    def _validate(self, raw: Sequence[bytes]) -> list[frame_msg.Frame]:
        frames: list[frame_msg.Frame] = []
        now = time.time()
        for message in raw:
            try:
                f = frame_msg.decode(message, self.settings.max_pixels)
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

    def _validate_leased(self, leased: Sequence[tuple[str, bytes]]
                         ) -> list[tuple[frame_msg.Frame, str | None]]:
        """Job frames: validated like live ones, but never stale; bad ones are acknowledged."""
        frames: list[tuple[frame_msg.Frame, str | None]] = []
        bad: list[str] = []
        for lease, message in leased:
            try:
                f = frame_msg.decode(message, self.settings.max_pixels)
                if f.type != self.settings.type:
                    raise InvalidMessage(f"job frame of type {f.type!r} in the "
                                         f"{self.settings.type!r} job queue")
            except InvalidMessage as exc:
                log.warning("dropping invalid job frame %s: %s", lease, exc)
                self._drop("invalid")
                bad.append(lease)
                continue
            frames.append((f, lease))
        self._ack_quietly(bad)
        return frames

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

    def _publish(self, items: list[Published]) -> None:
        """Publisher thread: publish, retrying through a Redis outage (frames already popped)."""
        live = [(r, jpeg) for r, jpeg, lease in items if lease is None]
        done = [(r, lease) for r, _, lease in items if lease is not None]
        while True:
            try:
                self.broker.publish(live)
                self._store_job_results(done)
                self.publish_backoff.succeeded()
                break
            except REDIS_DOWN_ERRORS as exc:
                if self.stop.is_set():
                    log.warning("stopping with %d unpublished results", len(items))
                    return
                self.progress.moved()  # waiting on Redis, not wedged
                self.publish_backoff.failed(exc, self.stop)
        self.progress.moved()
        published = time.time()
        for result, _ in live:
            self.metrics.latency.observe(max(0.0, published - result.ts_capture))
        n = len(items)
        self.metrics.inferred.inc(n)
        with self._lock:
            self.frames_done += n
            self._infer_rate.add(n)

    def _store_job_results(self, done: Sequence[tuple[Result, str]]) -> None:
        """Store job results by frame number and acknowledge their frames, in one round trip.

        A job deleted meanwhile gets nothing stored (each store checks the job; its frames are
        only acknowledged).
        """
        if not done:
            return
        pipe = self.client.pipeline(transaction=False)
        for result, _ in done:
            self.jobs.store_result(result.stream, result.type, result.seq, result.encode(), pipe)
        self.job_queue.ack([lease for _, lease in done], pipe)
        pipe.execute()

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
        self._waiting = stats.length + self.job_queue.waiting()
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
        # Peers counted before this beat, plus this worker: the heartbeat carries the shares.
        workers = len({*self.registry.ids(), self.worker_id})
        drop_share = type_drop_fps / workers
        ratio = scale_ratio(infer_fps, type_drop_fps, workers, capacity)
        info = {"type": self.settings.type, "model": self.detector.model,
                "device": self.detector.device, "infer_fps": round(infer_fps, 2),
                "capacity_fps": round(capacity, 2), "frames": self.frames_done,
                "drop_fps": round(drop_share, 2), "scale_ratio": round(ratio, 3),
                "queue_length": stats.length}
        self.registry.beat(self.worker_id, info)
        m = self.metrics
        m.infer_fps.set(infer_fps)
        m.capacity_fps.set(capacity)
        m.drop_fps.set(drop_share)
        m.scale_ratio.set(ratio)
        m.queue_length.set(stats.length)
        m.active_workers.set(workers)
        if new_overflow:
            # Producers trim the queue, not workers: each worker counts its share of the
            # type's overflow so the sum over pods is the type's total.
            m.dropped["overflow"].inc(new_overflow / workers)


def main(argv: list[str]) -> int:
    settings = parse_settings(InferSettings, argv, prog="ei infer")
    setup_logging(settings.log_level)
    runtime = ServiceRuntime("infer", drain_timeout=settings.drain_timeout)
    runtime.install_signal_handlers()
    runtime.serve_health(settings.metrics_host, settings.metrics_port)
    detector = load_detector(settings.type, settings.model_dir, settings.device,
                             settings.model or None, settings.threshold or None,
                             settings.precision)
    client = connect(settings.redis_url, socket_timeout=POP_TIMEOUT + 10)
    try:
        return InferWorker(settings, client, detector, runtime).run() or runtime.exit_code
    finally:
        runtime.close()
        client.close()
