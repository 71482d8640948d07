"""``ei analysis``: the job runner. Turns a queued analysis job into frames for the workers.

A runner leases one job at a time from ``ei:jobs:pending``, reads its video (a file from the
media directory, or a URL), and sends every ``frame_step``-th frame to the lossless job queue of
each of the job's types, where the type's ordinary workers pick it up whenever their live queue
is empty. Each kept frame is also stored with the job, for ``frames/{n}.jpg``.

Nothing is lost on the way: the job stays leased while the runner works (renewed every
second), so if the runner dies another one re-runs the extraction from the start; frames and
results are keyed by frame number, so running twice writes the same entries. For the same
reason a Redis error that passes (an outage, ``maxmemory``, a failover) in the middle of a job
is met by running the job again, with backoff, until it goes through. Extraction waits
while a type's queue holds ``max_pending`` frames, which bounds Redis memory for any video
length, and gives up after ``max_job_seconds`` (an endless stream would hold the runner
forever). A job deleted meanwhile gets nothing more written. See doc/analysis.md.
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any

import cv2

from ..core.errors import InvalidMessage
from ..core.frame import Frame
from ..core.jobrequest import resolve_source
from ..core.jobs import JobStore, job_message_id
from ..core.jpeg import check_jpeg_file, check_pixels
from ..core.leased import LeasedQueue
from ..core.redact import redact_url
from ..core.redisconn import REDIS_DOWN_ERRORS, Backoff, RedisClient, error_text, retry
from ..core.runtime import ServiceRuntime, running
from ..core.settings import AnalysisSettings, parse_settings
from ..core.sourceurl import CAPTURE_OPTIONS_VAR, ffmpeg_capture_options
from ..engine.preprocess import encode_jpeg

log = logging.getLogger(__name__)

IDLE_POLL = 0.5  # seconds between looks at an empty job queue
RENEW_EVERY = 1.0  # seconds between lease renewals and deletion checks while extracting
#: Consecutive unreadable frames inside a file before it is treated as ended.
MAX_BAD_READS = 10
URL_TIMEOUT_MS = 10000


class JobAborted(Exception):
    """The job was deleted, or the runner is stopping, while it extracted."""


class JobTimedOut(Exception):
    """The job's source was still being read after ``max_job_seconds``."""


class AnalysisRunner:
    """Leases jobs and extracts their frames until stopped (or ``max_jobs`` ran)."""

    def __init__(self, settings: AnalysisSettings, client: RedisClient,
                 runtime: ServiceRuntime) -> None:
        self.settings = settings
        self.client = client
        self.runtime = runtime
        self.stop = runtime.stop
        self.store = JobStore(client)
        self.backoff = Backoff("analysis")
        self.jobs_run = 0
        self._deadline = float("inf")  # monotonic time the current job must end by
        self.source_policy = settings.source_policy()
        # FFmpeg must not follow a redirect the policy has not seen (core/sourceurl.py).
        os.environ[CAPTURE_OPTIONS_VAR] = ffmpeg_capture_options(
            os.environ.get(CAPTURE_OPTIONS_VAR))

    def run(self) -> int:
        self.runtime.ready.set()
        log.info("analysis runner: media directory %s", self.settings.media_dir)
        while not self.stop.is_set():
            if self.settings.max_jobs and self.jobs_run >= self.settings.max_jobs:
                break
            try:
                taken = self.store.pending.lease(1, self.settings.lease_timeout)
                self.backoff.succeeded()
            except REDIS_DOWN_ERRORS as exc:
                self.backoff.failed(exc, self.stop)
                continue
            if not taken:
                self.stop.wait(IDLE_POLL)
                continue
            self._run_leased(taken[0][0])
        log.info("analysis runner stopped after %d jobs", self.jobs_run)
        return 0

    def _run_leased(self, job_id: str) -> None:
        """Run a job this runner leased to its end, through Redis errors that pass."""
        finished = retry(lambda: self.run_job(job_id), self.backoff, self.stop)
        if finished:
            if retry(lambda: self._ack(job_id), self.backoff, self.stop):
                self.jobs_run += 1
        elif finished is not None:  # stopping: another runner takes it now
            try:
                self.store.pending.release([job_id])
            except REDIS_DOWN_ERRORS as exc:
                log.warning("job %s not released (%s); its lease runs out", job_id,
                            error_text(exc))
        # None: stopped during an outage; the lease runs out and another runner takes it.

    def _ack(self, job_id: str) -> bool:
        self.store.pending.ack([job_id])
        return True

    def run_job(self, job_id: str) -> bool:
        """Extract one job; False when stopped midway (the job must be run again)."""
        job = self.store.get(job_id)
        if job is None:
            return True  # deleted before it started: nothing to do
        try:
            # Checked again right before opening: DNS may answer differently than at submission.
            target = resolve_source(self.store.source(job_id), self.settings.media_dir,
                                    self.source_policy)
        except InvalidMessage as exc:
            self.store.update(job_id, status="failed", error=str(exc))
            return True
        self.store.update(job_id, status="extracting", started=time.time())
        log.info("job %s: %s -> %s every %d frame(s)", job_id, redact_url(target),
                 ",".join(job["types"]), job["frame_step"])
        try:
            kept = self._extract(job_id, target, job["types"], job["frame_step"])
        except JobAborted as exc:
            log.info("job %s: %s", job_id, exc)
            return not self.stop.is_set()
        except JobTimedOut as exc:
            self.store.fail(job_id, str(exc), job["types"])
            log.warning("job %s failed: %s", job_id, exc)
            return True
        except InvalidMessage as exc:
            self.store.update(job_id, status="failed", error=str(exc))
            log.warning("job %s failed: %s", job_id, exc)
            return True
        self.store.update(job_id, status="processing", frames_total=kept, frames_read=kept)
        log.info("job %s: %d frames queued", job_id, kept)
        return True

    def _extract(self, job_id: str, target: str, types: list[str], step: int) -> int:
        """Read ``target`` and queue every ``step``-th frame for every type; frames queued."""
        limit = self.settings.max_job_seconds
        self._deadline = time.monotonic() + limit if limit else float("inf")
        cap: Any
        if "://" in target:
            cap = cv2.VideoCapture(target, cv2.CAP_FFMPEG,
                                   [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, URL_TIMEOUT_MS,
                                    cv2.CAP_PROP_READ_TIMEOUT_MSEC, URL_TIMEOUT_MS])
        else:
            check_jpeg_file(target, self.settings.max_pixels)  # a still image: before FFmpeg
            cap = cv2.VideoCapture(target)
        if not cap.isOpened():
            raise InvalidMessage(f"cannot open the source {redact_url(target)}")
        try:
            # Containers declare the size before any frame is decoded (0 when they do not).
            check_pixels(int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)),
                         int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)), self.settings.max_pixels,
                         "the source")
        except InvalidMessage:
            cap.release()
            raise
        # Frame times of the job's tracks and events are frame number / fps (0: unknown).
        fps = float(cap.get(cv2.CAP_PROP_FPS) or 0)
        if not self.store.update(job_id, fps=fps if 0 < fps < 1000 else 0):
            cap.release()
            raise JobAborted("deleted while extracting")
        queues = {t: LeasedQueue.for_type(self.client, t) for t in types}
        total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        kept = 0
        index = 0
        bad = 0
        renew_at = time.monotonic() + RENEW_EVERY
        try:
            while True:
                if time.monotonic() >= renew_at:
                    self._keep_alive(job_id, kept)
                    renew_at = time.monotonic() + RENEW_EVERY
                ok, image = cap.read()
                if not ok:
                    if 0 < total and index < total - 1 and bad < MAX_BAD_READS:
                        bad += 1  # a broken frame inside a file: it keeps its number
                        index += 1
                        continue
                    break
                bad = 0
                if index % step == 0:
                    if kept >= self.settings.max_job_frames:
                        self.store.update(job_id, truncated=1)
                        log.warning("job %s: stopped at %d frames (EI_MAX_JOB_FRAMES)", job_id,
                                    kept)
                        break
                    self._send(job_id, index, image, queues)
                    kept += 1
                    self._wait_for_room(job_id, queues, kept)
                index += 1
        finally:
            cap.release()
        if kept == 0:
            raise InvalidMessage("the source yielded no frames")
        return kept

    def _send(self, job_id: str, index: int, image: Any,
              queues: dict[str, LeasedQueue]) -> None:
        """Store frame ``index`` with the job and queue it for each type."""
        encoded = encode_jpeg(image, self.settings.max_width, self.settings.jpeg_quality)
        if encoded is None:
            raise InvalidMessage(f"frame {index} could not be encoded")
        jpeg, w, h = encoded
        now = time.time()
        # The frame and every type's message in one atomic step, only while the job exists.
        messages = [(q, Frame(job_id, t, index, now, w, h, jpeg).encode())
                    for t, q in queues.items()]
        if not self.store.store_frame(job_id, index, jpeg, job_message_id(job_id, index),
                                      messages):
            raise JobAborted("deleted while extracting")

    def _wait_for_room(self, job_id: str, queues: dict[str, LeasedQueue], kept: int) -> None:
        """Back-pressure: wait while any type's queue is full, renewing the job's lease."""
        while any(q.waiting() >= self.settings.max_pending for q in queues.values()):
            self._keep_alive(job_id, kept)
            if self.stop.wait(0.05):
                raise JobAborted("stopping; the job goes back to the queue")

    def _keep_alive(self, job_id: str, kept: int) -> None:
        if self.stop.is_set():
            raise JobAborted("stopping; the job goes back to the queue")
        if time.monotonic() >= self._deadline:
            raise JobTimedOut(
                f"timed out: the source was still being read after "
                f"{self.settings.max_job_seconds:g} s (EI_MAX_JOB_SECONDS), {kept} frame(s) "
                f"kept; use a file or a shorter clip, or raise the limit")
        if not self.store.update(job_id, frames_read=kept):
            raise JobAborted("deleted while extracting")
        self.store.pending.extend([job_id], self.settings.lease_timeout)


def main(argv: list[str]) -> int:
    settings = parse_settings(AnalysisSettings, argv, prog="ei analysis")
    with running("analysis", settings) as (runtime, client):
        return AnalysisRunner(settings, client, runtime).run() or runtime.exit_code
