"""The publisher thread: results leave the hot loop here and reach Redis in batches."""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from ...core.broker import OutputBroker
from ...core.frame import Frame
from ...core.jobs import JobStore
from ...core.leased import LeasedQueue
from ...core.metrics import WorkerMetrics
from ...core.redisconn import REDIS_DOWN_ERRORS, Backoff, RedisClient
from ...core.result import Result
from ...core.runtime import Progress

log = logging.getLogger(__name__)

#: A finished frame: its result, the frame, and its job-queue lease (None when live).
Published = tuple[Result, Frame, str | None]


@dataclass
class Publisher:
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


@dataclass
class ResultWriter:
    """What the publisher thread does with a batch: live results to the output broker, job
    results to their jobs (their frames acknowledged), retrying through a Redis outage, since
    the frames are already popped. ``published(n)`` is told how many went out."""

    client: RedisClient
    broker: OutputBroker
    jobs: JobStore
    job_queue: LeasedQueue
    metrics: WorkerMetrics
    backoff: Backoff
    progress: Progress
    stop: threading.Event
    published: Callable[[int], None]

    def __call__(self, items: list[Published]) -> None:
        live = [(r, f) for r, f, lease in items if lease is None]
        done = [(r, lease) for r, _, lease in items if lease is not None]
        while True:
            try:
                self.broker.publish([(r, self._ref(f)) for r, f in live])
                self._store_job_results(done)
                self.backoff.succeeded()
                break
            except REDIS_DOWN_ERRORS as exc:
                if self.stop.is_set():
                    log.warning("stopping with %d unpublished results", len(items))
                    return
                self.progress.moved()  # waiting on Redis, not wedged
                self.backoff.failed(exc, self.stop)
        self.progress.moved()
        now = time.time()
        for result, _ in live:
            self.metrics.latency.observe(max(0.0, now - result.ts_capture))
        self.metrics.inferred.inc(len(items))
        self.published(len(items))

    def _ref(self, frame: Frame) -> str:
        """The frame's id in the frame store; a live frame that came with its JPEG (a v1
        producer's) is stored there first, so every live result refers to a stored frame."""
        return frame.ref or self.broker.frames.add(frame.stream, frame.jpeg,
                                                   self.broker.out_maxlen)

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
