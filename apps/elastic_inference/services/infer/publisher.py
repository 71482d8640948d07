"""How finished frames reach Redis: live results to the output broker, job results to their
jobs. The worker's thread queues them on the pipeline of its next pop (``stage``), so results
take no round trip of their own; a refused publish is retried here with backoff."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import redis

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
class ResultWriter:
    """Publishes batches of finished frames: live results to the output broker, job results to
    their jobs (their frames acknowledged). ``stage`` queues a batch on someone's pipeline,
    ``record`` counts it once that went through, and a call retries it through a Redis outage
    (the frames are already popped) until it is published or the worker stops."""

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
        while True:
            try:
                pipe = self.client.pipeline(transaction=False)
                self.stage(items, pipe)
                pipe.execute()
                break
            except REDIS_DOWN_ERRORS as exc:
                if self.stop.is_set():
                    log.warning("stopping with %d unpublished results", len(items))
                    return
                self.progress.moved()  # waiting on Redis, not wedged
                self.backoff.failed(exc, self.stop)
        self.record(items)

    def stage(self, items: Sequence[Published], pipe: redis.client.Pipeline) -> None:
        """Queue on ``pipe`` the publishing of ``items``. A job result is stored by frame
        number only if its job still exists (a job deleted meanwhile gets its frames
        acknowledged only)."""
        self.broker.publish([(r, self._ref(f)) for r, f, lease in items if lease is None],
                            pipe=pipe)
        done = [(r, lease) for r, _, lease in items if lease is not None]
        for result, _ in done:
            self.jobs.store_result(result.stream, result.type, result.seq, result.encode(), pipe)
        self.job_queue.ack([lease for _, lease in done], pipe)

    def record(self, items: Sequence[Published]) -> None:
        """Count ``items`` as published (the metrics, the worker's counters, its health)."""
        self.backoff.succeeded()
        self.progress.moved()
        now = time.time()
        for result, _, lease in items:
            if lease is None:
                self.metrics.latency.observe(max(0.0, now - result.ts_capture))
        self.metrics.inferred.inc(len(items))
        self.published(len(items))

    def _ref(self, frame: Frame) -> str:
        """The frame's id in the frame store; a live frame that came with its JPEG (a v1
        producer's) is stored there first, so every live result refers to a stored frame."""
        return frame.ref or self.broker.frames.add(frame.stream, frame.jpeg,
                                                   self.broker.out_maxlen)
