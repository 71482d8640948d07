"""The stream service's loop: capture -> encode once -> push to every type's queue."""

from __future__ import annotations

import logging
import math
import threading
import time
from typing import Any

from ...core.errors import InvalidMessage, SourceError
from ...core.frame import Frame
from ...core.framestore import FrameStore, store_length
from ...core.metrics import RateWindow, StreamMetrics
from ...core.queue import FrameQueue, push_to_types
from ...core.redisconn import REDIS_DOWN_ERRORS, Backoff, RedisClient
from ...core.registry import HEARTBEAT_INTERVAL, StreamRegistry
from ...core.runtime import ServiceRuntime
from ...core.settings import StreamSettings
from ...engine.preprocess import encode_jpeg, scaled_size
from .pacing import Pacer
from .source import Read, Source, reopen_delay

log = logging.getLogger(__name__)

#: Used when a file does not say its frame rate (some AVI/MJPEG files report 0).
DEFAULT_FILE_FPS = 25.0
#: Consecutive failed reads before a live source is closed and reopened.
LIVE_FAILURES_BEFORE_REOPEN = 3
#: Consecutive failed reads inside a file before it is treated as ended.
FILE_FAILURES_BEFORE_END = 10

#: What the registry, the API and ``ei_stream_state`` show: ``failed`` is a live source given up
#: after ``max_retries`` reopen tries, ``ended`` a file that finished with looping off.
STATES = ("connecting", "live", "retrying", "failed", "ended")


class StreamService:
    """Capture → encode once → push to every type's queue, with registry heartbeats.

    One thread, one loop: each turn checks ``stop`` (``runtime.stop`` unless given: a pool
    reader has its own, see services/stream/pool.py), heartbeats when due and does one step
    (wait for a slot, read, publish, or reopen). Redis failures and source failures each have
    their own backoff so neither stops the other. ``replica`` (a pool replica's id) is shown in
    the registry beside the state; a pool reader does not ``unregister`` itself when it stops
    (the source may be another replica's by then).
    """

    def __init__(self, settings: StreamSettings, runtime: ServiceRuntime, client: RedisClient,
                 source: Source, stream_id: str, *, stop: threading.Event | None = None,
                 metrics: StreamMetrics | None = None, replica: str = "",
                 unregister: bool = True) -> None:
        self.settings = settings
        self.runtime = runtime
        self.stop = runtime.stop if stop is None else stop
        self.source = source
        self.stream_id = stream_id
        self.replica = replica
        self.unregister = unregister  # a pool reader leaves that to the pool (pool.py)
        self.types = list(dict.fromkeys(settings.types))
        self.queues = [FrameQueue(client, t, settings.queue_maxlen) for t in self.types]
        self.frames = FrameStore(client)
        self.registry = StreamRegistry(client)
        self.metrics = metrics or StreamMetrics(runtime.registry, stream_id)
        self.overflow = {t: self.metrics.overflow.labels(stream_id, t) for t in self.types}
        self.backoff = Backoff(f"stream {stream_id}")
        self.rate = RateWindow(5.0)
        self.pacer = Pacer(0.0)
        self.state = "connecting"
        self.target_fps = settings.fps
        self.size = (0, 0)
        self.seq = 0
        self.sent = 0
        self.errors = 0
        self.reconnects = 0  # live source reopened after failing
        self._was_live = False
        self.started = time.time()
        self._redis_retry_at = 0.0
        self._next_beat = 0.0
        self._reopen_at = 0.0
        self._reopen_failures = 0
        self._errors_in_row = 0
        self._frames_this_pass = 0
        self._dropped_while_down = 0
        self.metrics.set_state(self.state, STATES)

    # ----- loop

    def run(self) -> int:
        """Stream until stopped, ``max_frames`` sent, or a non-looping file ends; exit code."""
        s = self.settings
        log.info("stream %s: %s source %s -> types %s (queue bound %d)", self.stream_id,
                 self.source.spec.kind, self.source.spec.public, ",".join(self.types),
                 s.queue_maxlen)
        try:
            self._open_first()
            while not self.stop.is_set():
                self._heartbeat_if_due()
                if s.max_frames and self.sent >= s.max_frames:
                    log.info("stream %s: sent %d frames (max_frames), stopping", self.stream_id,
                             self.sent)
                    break
                if self.state == "ended":
                    break
                if self.state == "failed":
                    # Stay registered so the failure is visible; nothing to do but wait.
                    self.stop.wait(max(0.1, self._beat_due_in()))
                    continue
                if self.source.is_open:
                    self._step()
                else:
                    self._reopen_when_due()
            return 0
        finally:
            self._shutdown()

    def _step(self) -> None:
        if self.source.spec.live:
            due = self.pacer.due_in() <= 0
            if due and not self._redis_usable():
                # Keep grabbing so the camera's buffer stays fresh, but do not decode a frame
                # that cannot be sent; its slot and seq number are skipped.
                self.source.read(want=False)
                self.pacer.mark()
                self.seq += 1
                self._dropped_while_down += 1
                return
            status, image = self.source.read(want=due)
        else:
            if not self._redis_usable():
                self._hold_while_redis_down()
                return
            if not self._wait_for_slot():
                return
            status, image = self.source.read()
        captured = time.time()
        if status is Read.SKIPPED:
            return
        if status is Read.END:
            self._source_ended()
            return
        if status is Read.ERROR:
            self._read_failed()
            return
        self._errors_in_row = 0
        self._frames_this_pass += 1
        self.pacer.mark()
        self._publish(image, captured)

    def _wait_for_slot(self) -> bool:
        """Sleep until the pacer's next slot, heartbeating meanwhile; False when stopped."""
        while (delay := self.pacer.due_in()) > 0:
            if self.stop.wait(min(delay, self._beat_due_in())):
                return False
            self._heartbeat_if_due()
        return True

    def _hold_while_redis_down(self) -> None:
        """A file has no clock of its own: hold its position until Redis may take frames again,
        rather than spend a core decoding frames that would be dropped (5-30 per second)."""
        self.stop.wait(max(0.01, min(self._redis_retry_at - time.monotonic(),
                                     self._beat_due_in())))

    # ----- source life cycle

    def _open_first(self) -> None:
        if self.source.open():
            self._opened()
        elif self.source.spec.live:
            self._capture_error("open failed")
            self._retry_later("could not be opened")
        else:
            raise SourceError(f"cannot open video file {self.source.spec.target} "
                              "(missing, unreadable or not a video)")

    def _opened(self) -> None:
        src = self.source
        if src.spec.live:
            self.target_fps = self.settings.fps or src.fps
            self.pacer = Pacer(self.settings.fps)
        else:
            self.target_fps = self.settings.fps or src.fps or DEFAULT_FILE_FPS
            self.pacer = Pacer(self.target_fps)
        if src.size[0] > 0 and src.size[1] > 0:
            self.size = scaled_size(*src.size, self.settings.max_width)
        self._errors_in_row = 0
        self._frames_this_pass = 0
        self._was_live = True
        self._set_state("live")
        log.info("stream %s: %s source %s open (%dx%d, sending %.1f fps%s)", self.stream_id,
                 src.spec.kind, src.spec.public, self.size[0], self.size[1], self.target_fps,
                 "" if self.target_fps or not src.spec.live else " = source rate")

    def _source_ended(self) -> None:
        """A file reached its end: loop it, or end the stream."""
        if self._frames_this_pass == 0:
            raise SourceError(f"video file {self.source.spec.target} yields no frames")
        if not self.settings.loop:
            log.info("stream %s: end of %s after %d frames (loop off)", self.stream_id,
                     self.source.spec.public, self.sent)
            self.source.close()
            self._set_state("ended")
            self._heartbeat_if_due()
            return
        log.debug("stream %s: end of %s, looping", self.stream_id, self.source.spec.public)
        if not self.source.open():
            raise SourceError(f"cannot reopen video file {self.source.spec.target}")
        self._frames_this_pass = 0

    def _read_failed(self) -> None:
        self._capture_error("read failed")
        self._errors_in_row += 1
        if self.source.spec.live and self._errors_in_row >= LIVE_FAILURES_BEFORE_REOPEN:
            self.source.close()
            self._retry_later(f"stopped yielding frames ({self._errors_in_row} failed reads)")
        elif not self.source.spec.live and self._errors_in_row >= FILE_FAILURES_BEFORE_END:
            log.warning("stream %s: %d failed reads in a row in %s; treating as its end",
                        self.stream_id, self._errors_in_row, self.source.spec.public)
            self._source_ended()

    def _capture_error(self, reason: str) -> None:
        """Count a failed open/read or an unusable frame; log the 1st, 10th, 100th, ... only,
        so a source that keeps failing cannot flood the log."""
        self.errors += 1
        self.metrics.errors.inc()
        if math.log10(self.errors).is_integer():
            log.warning("stream %s: capture error on %s: %s (%d so far)", self.stream_id,
                        self.source.spec.public, reason, self.errors)

    def _retry_later(self, reason: str) -> None:
        self._reopen_failures += 1
        limit = self.settings.max_retries
        if limit and self._reopen_failures > limit:
            self._set_state("failed")
            log.error("stream %s: %s source %s %s; giving up after %d tries (EI_MAX_RETRIES)",
                      self.stream_id, self.source.spec.kind, self.source.spec.public, reason,
                      limit)
            return
        delay = reopen_delay(self._reopen_failures)
        self._reopen_at = time.monotonic() + delay
        self._set_state("retrying")
        log.warning("stream %s: %s source %s %s; reopening in %.1f s (try %d)", self.stream_id,
                    self.source.spec.kind, self.source.spec.public, reason, delay,
                    self._reopen_failures)

    def _reopen_when_due(self) -> None:
        wait = self._reopen_at - time.monotonic()
        if wait > 0:
            self.stop.wait(min(wait, self._beat_due_in()))
            return
        if self.source.open():
            log.info("stream %s: source reopened after %d failed tries", self.stream_id,
                     self._reopen_failures)
            self._reopen_failures = 0
            if self._was_live:  # a reopen of a source that had worked: a reconnect
                self.reconnects += 1
                self.metrics.source_reconnects.inc()
            self._opened()
        else:
            self._capture_error("open failed")
            self._retry_later("could not be opened")

    def _set_state(self, state: str) -> None:
        if state != self.state:
            log.info("stream %s: %s -> %s", self.stream_id, self.state, state)
            self.state = state
            self.metrics.set_state(state, STATES)
            self._next_beat = 0.0  # publish state changes at once

    # ----- Redis

    def _publish(self, image: Any, captured: float) -> None:
        """Encode once, store the JPEG once and push a reference per type (Redis is usable)."""
        seq = self.seq
        self.seq += 1
        encoded = encode_jpeg(image, self.settings.max_width, self.settings.jpeg_quality)
        if encoded is None:
            self._capture_error("undecodable or empty frame")
            return
        jpeg, w, h = encoded
        try:
            Frame(self.stream_id, self.types[0], seq, captured, w, h, jpeg)  # checks it
        except InvalidMessage as exc:
            self._capture_error(f"frame {seq} not sendable: {exc}")
            return
        if self.stop.is_set():  # told to stop, or (pool) the lease may lapse: send no more
            return
        try:
            # The JPEG once in the frame store, then a reference to it in each type's queue.
            ref = self.frames.add(self.stream_id, jpeg,
                                  store_length(self.target_fps, self.settings.frame_keep,
                                               self.settings.queue_maxlen))
            messages = [Frame(self.stream_id, t, seq, captured, w, h, b"", ref).encode()
                        for t in self.types]
            results = push_to_types(self.queues, messages)
        except REDIS_DOWN_ERRORS as exc:
            self._redis_failed(exc)
            self._dropped_while_down += 1
            return
        self._redis_ok()
        self.size = (w, h)
        self.sent += 1
        self.metrics.frames.inc()
        self.rate.add()
        for t, result in zip(self.types, results, strict=True):
            if result.dropped:
                self.overflow[t].inc(result.dropped)

    def info(self) -> dict[str, Any]:
        """Registry details; ``source`` is the public form (no credentials)."""
        info: dict[str, Any] = {
            "types": self.types,
            "source_kind": self.source.spec.kind,
            "source": self.source.spec.public,
            "w": self.size[0],
            "h": self.size[1],
            "fps": round(self.target_fps, 3),
            "sent_fps": round(self.rate.rate(), 2),
            "state": self.state,
            "frames": self.sent,
            "errors": self.errors,
            "reconnects": self.reconnects,
            "started": self.started,
        }
        if self.replica:
            info["replica"] = self.replica
        return info

    def _heartbeat_if_due(self) -> None:
        now = time.monotonic()
        if now < self._next_beat:
            return
        self._next_beat = now + HEARTBEAT_INTERVAL
        self.metrics.fps.set(self.rate.rate())
        if not self._redis_usable():
            return
        try:
            self.registry.beat(self.stream_id, self.info())
        except REDIS_DOWN_ERRORS as exc:
            self._redis_failed(exc)
            return
        self._redis_ok()

    def _beat_due_in(self) -> float:
        return max(0.0, self._next_beat - time.monotonic())

    def _redis_usable(self) -> bool:
        return time.monotonic() >= self._redis_retry_at

    def _redis_failed(self, exc: BaseException) -> None:
        self._redis_retry_at = time.monotonic() + self.backoff.record_failure(exc)

    def _redis_ok(self) -> None:
        if self.backoff.succeeded():
            self.metrics.reconnects.inc()
            self._next_beat = 0.0  # re-register at once (a restarted Redis forgot us)
            log.info("stream %s: %d frames dropped while Redis was down", self.stream_id,
                     self._dropped_while_down)
            self._dropped_while_down = 0
        if self.source.is_open and not self.runtime.ready.is_set():
            self.runtime.ready.set()

    def _shutdown(self) -> None:
        self.source.close()
        try:
            if self.unregister:
                self.registry.remove(self.stream_id)
        except REDIS_DOWN_ERRORS as exc:
            log.warning("stream %s: could not unregister (%s); the entry expires in %.0f s",
                        self.stream_id, exc, self.registry.ttl)
        log.info("stream %s: stopped after %d frames sent, %d capture errors", self.stream_id,
                 self.sent, self.errors)
