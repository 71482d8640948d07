"""``ei infer``: the inference worker of one type (the hot path).

Three stages overlap, so on a small CPU every core stays busy:

    Redis pop -> validate, drop stale (pop time) -> decode pool: JPEG decoded at reduced size
    and resized to the model input -> main thread: submit to OpenVINO (async requests,
    THROUGHPUT hint), results taken back in pop order -> result JSON with the frame's
    reference, everything finished published in the round trip of the next pop.

The main thread keeps ``EI_BATCH`` frames (at least three model batches) popped and decoding
ahead, topping the pool up with a non-blocking pop whenever a model batch (at least half of
``EI_BATCH``) is missing, and blocks on Redis only when it has nothing else to do. Freed frame
buffers stay in the process (``engine.preprocess.reuse_frame_memory``) instead of being faulted
in again for every frame. On SIGTERM it stops popping and finishes the frames it holds.

Frames of analysis jobs come from the type's lossless job queue, only when the live queue is
empty (live frames are fresher and may be dropped; job frames wait). They are leased, never
dropped as stale, and acknowledged only after their result is stored with the job, so a worker
killed while holding some leaves them to another worker once the lease runs out.

A side thread refreshes the rate gauges and the heartbeat every second, so the hot loop never
sleeps on a timer.

Redis errors that pass (an outage, ``maxmemory``, a failover: ``REDIS_DOWN_ERRORS``) are retried
with backoff (publishing on a backoff of its own: at ``maxmemory`` pops succeed while
publishing is refused); any other exception ends the process, from the stats thread too
(``ServiceRuntime.start_thread``), and ``/healthz`` fails when frames wait and nothing has
moved for ``EI_STALL_TIMEOUT`` seconds.
"""

from __future__ import annotations

import logging

from ...core.runtime import running
from ...core.settings import InferSettings, parse_settings
from ...engine.factory import load_detector
from ...engine.preprocess import (
    decode_jpeg,
    one_thread_per_call,
    reduction_for,
    reuse_frame_memory,
)
from .worker import POP_TIMEOUT, InferWorker, default_worker_id

__all__ = ["InferWorker", "decode_jpeg", "default_worker_id", "main", "reduction_for"]

log = logging.getLogger(__name__)


def main(argv: list[str]) -> int:
    settings = parse_settings(InferSettings, argv, prog="ei infer")
    one_thread_per_call()  # the decode pool is the parallelism
    with running("infer", settings, socket_timeout=POP_TIMEOUT + 10) as (runtime, client):
        if not reuse_frame_memory():
            log.info("no glibc mallopt here: freed frame buffers go back to the kernel")
        detector = load_detector(settings.type, settings.model_dir, settings.device,
                                 settings.model or None, settings.threshold or None,
                                 settings.precision)
        return InferWorker(settings, client, detector, runtime).run() or runtime.exit_code
