"""The original design's worker, reproduced as the bench's baseline.

What this product replaced: a loop that polls Redis without blocking (sleeping when the queue
is empty), decodes every JPEG at full size, runs one synchronous inference per frame, draws the
boxes and re-encodes the frame before publishing it, one Redis call per frame. It runs the same
model through the same runtime class, set up the way a synchronous loop uses it (LATENCY hint,
one infer request), so the comparison measures the design and nothing else.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import replace
from pathlib import Path

import cv2
import redis

from ..core import frame as frame_msg
from ..core import keys
from ..core.result import Result
from ..engine.annotate import draw_detections
from ..engine.models import resolve
from ..engine.openvino_runtime import OpenVINODetector
from ..engine.preprocess import decode_jpeg

log = logging.getLogger(__name__)

EMPTY_SLEEP = 0.01  # the original polled with LPOP and slept this long on an empty queue
JPEG_QUALITY = 80


class OriginalDesignWorker:
    """Synchronous, full-size, re-encoding worker for one inference type."""

    def __init__(self, client: redis.Redis, infer_type: str, model_dir: Path, device: str,
                 model: str | None = None) -> None:
        spec, label_filter = resolve(infer_type, model, model_dir)
        self.client = client
        self.type = infer_type
        # One frame per request on every core, as it had: no batch or CPU share
        # (ModelSpec.batch, .cpu_share) in the original design.
        self.detector = OpenVINODetector(replace(spec, batch=1, cpu_share=1.0), model_dir,
                                         device, label_filter, performance_hint="LATENCY",
                                         num_requests=1)
        self.frames = 0
        self.published_at: list[float] = []

    def run(self, max_frames: int, stop: threading.Event, timeout: float = 300.0) -> int:
        """Process frames until ``max_frames`` are published, ``stop`` or ``timeout``."""
        deadline = time.monotonic() + timeout
        queue = keys.queue(self.type)
        while self.frames < max_frames and not stop.is_set() and time.monotonic() < deadline:
            raw = self.client.lpop(queue)
            if raw is None:
                time.sleep(EMPTY_SLEEP)
                continue
            f = frame_msg.decode(raw)
            image = decode_jpeg(f.jpeg)  # full size
            detections = self.detector.infer([image])[0]
            drawn = draw_detections(image, detections)
            ok, jpeg = cv2.imencode(".jpg", drawn, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
            if not ok:
                continue
            result = Result(stream=f.stream, type=f.type, seq=f.seq, ts_capture=f.ts,
                            ts_done=time.time(), model=self.detector.model,
                            device=self.detector.device, w=f.w, h=f.h,
                            detections=tuple(detections))
            self.client.xadd(keys.out(f.stream), {"frame": jpeg.tobytes(),
                                                  "result": result.encode()},
                             maxlen=32, approximate=True)
            self.frames += 1
            self.published_at.append(time.perf_counter())
        return self.frames

    def reset(self) -> None:
        """Forget what was counted (after a warm-up run)."""
        self.frames = 0
        self.published_at = []

    def throughput(self, warmup: float = 0.1) -> float:
        """Frames per second after the first ``warmup`` fraction (model warm-up excluded)."""
        times = self.published_at
        first = int(len(times) * warmup)
        if len(times) - first < 2:
            return 0.0
        return (len(times) - 1 - first) / (times[-1] - times[first])

    def close(self) -> None:
        self.detector.close()
