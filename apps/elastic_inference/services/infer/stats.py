"""The worker's once-a-second side loop: rate gauges, the autoscaling ratio and the heartbeat,
so the hot loop never sleeps on a timer."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field

from ...core.leased import LeasedQueue
from ...core.metrics import CapacityWindow, RateWindow, WorkerMetrics, scale_ratio
from ...core.queue import DROP_REASONS, FrameQueue
from ...core.redisconn import REDIS_DOWN_ERRORS
from ...core.registry import WorkerRegistry

log = logging.getLogger(__name__)

STATS_INTERVAL = 1.0


@dataclass
class Counters:
    """What the hot loop counts and the stats loop reads, under one lock."""

    frames_done: int = 0  # published
    infer_rate: RateWindow = field(default_factory=RateWindow)
    capacity: CapacityWindow = field(default_factory=CapacityWindow)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def published(self, n: int) -> None:
        with self.lock:
            self.frames_done += n
            self.infer_rate.add(n)

    def worked(self, frames: int, seconds: float) -> None:
        """``frames`` completed in ``seconds`` of busy time (the capacity estimate)."""
        with self.lock:
            self.capacity.add(frames, seconds)


class WorkerStats:
    """Refreshes the gauges and the heartbeat from Redis (queue stats, peer count)."""

    def __init__(self, worker_id: str, infer_type: str, model: str, device: str,
                 queue: FrameQueue, job_queue: LeasedQueue, registry: WorkerRegistry,
                 metrics: WorkerMetrics, counters: Counters) -> None:
        self.worker_id = worker_id
        self.type = infer_type
        self.model = model
        self.device = device
        self.queue = queue
        self.job_queue = job_queue
        self.registry = registry
        self.metrics = metrics
        self.counters = counters
        self.waiting = 0  # frames in the type's queues at the last refresh
        self._type_drops = RateWindow()
        self._last_drop_total: int | None = None
        self._last_overflow: int | None = None

    def loop(self, stop: threading.Event) -> None:
        while not stop.wait(STATS_INTERVAL):
            try:
                self.update()
            except REDIS_DOWN_ERRORS as exc:
                log.debug("stats skipped: Redis unavailable (%s)", exc)

    def update(self) -> None:
        stats = self.queue.stats()
        self.waiting = stats.length + self.job_queue.waiting()
        total_drops = sum(stats.drops[r] for r in DROP_REASONS)
        new_overflow = 0
        if self._last_overflow is not None:
            new_overflow = max(0, stats.drops["overflow"] - self._last_overflow)
        self._last_overflow = stats.drops["overflow"]
        c = self.counters
        with c.lock:
            infer_fps = c.infer_rate.rate()
            capacity = c.capacity.capacity()
            frames_done = c.frames_done
        if self._last_drop_total is not None and total_drops >= self._last_drop_total:
            self._type_drops.add(total_drops - self._last_drop_total)
        self._last_drop_total = total_drops
        type_drop_fps = self._type_drops.rate()
        # Peers counted before this beat, plus this worker: the heartbeat carries the shares.
        workers = len({*self.registry.ids(), self.worker_id})
        drop_share = type_drop_fps / workers
        ratio = scale_ratio(infer_fps, type_drop_fps, workers, capacity)
        info = {"type": self.type, "model": self.model, "device": self.device,
                "infer_fps": round(infer_fps, 2), "capacity_fps": round(capacity, 2),
                "frames": frames_done, "drop_fps": round(drop_share, 2),
                "scale_ratio": round(ratio, 3), "queue_length": stats.length}
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
