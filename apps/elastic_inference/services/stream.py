"""``ei stream``: one video source (file, webcam or URL) feeding the frame queues of its types.

One process per source. Each captured frame is downscaled, JPEG-encoded once and pushed to every
inference type's bounded queue in one round trip, so adding a type costs a queue entry, not an
encode. The loop never blocks on Redis: while Redis is down a live source keeps grabbing (its
frames are dropped undecoded), a file holds its position, and pushing resumes on its own. A
live source that fails is reopened with backoff; a file loops.
See doc/streams.md.
"""

from __future__ import annotations

import enum
import hashlib
import logging
import math
import re
import time
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

import cv2
import redis

from ..core.errors import ConfigError, InvalidMessage, SourceError
from ..core.frame import Frame
from ..core.keys import STREAM_ID_RE
from ..core.metrics import RateWindow, StreamMetrics
from ..core.queue import FrameQueue, push_to_types
from ..core.redact import ambiguous_credentials, redact_url
from ..core.redisconn import REDIS_DOWN_ERRORS, Backoff, connect
from ..core.registry import HEARTBEAT_INTERVAL, StreamRegistry
from ..core.runtime import ServiceRuntime, setup_logging
from ..core.settings import StreamSettings, parse_settings
from ..engine.preprocess import encode_jpeg, scaled_size

log = logging.getLogger(__name__)

#: Schemes handed to FFmpeg as network streams; anything else without ``://`` is a file path.
URL_SCHEMES = ("rtsp", "rtsps", "rtmp", "rtmps", "http", "https", "udp", "tcp", "srt")
#: Used when a file does not say its frame rate (some AVI/MJPEG files report 0).
DEFAULT_FILE_FPS = 25.0
#: FFmpeg open/read timeouts for URLs, so a dead camera cannot hang the loop forever.
URL_TIMEOUT_MS = 5000
#: Reopen delays of a failed live source: 0.5 s doubling up to this cap.
REOPEN_BASE = 0.5
REOPEN_CAP = 10.0
#: Consecutive failed reads before a live source is closed and reopened.
LIVE_FAILURES_BEFORE_REOPEN = 3
#: Consecutive failed reads inside a file before it is treated as ended.
FILE_FAILURES_BEFORE_END = 10

#: What the registry, the API and ``ei_stream_state`` show: ``failed`` is a live source given up
#: after ``max_retries`` reopen tries, ``ended`` a file that finished with looping off.
STATES = ("connecting", "live", "retrying", "failed", "ended")

_UNSAFE_ID_CHARS = re.compile(r"[^A-Za-z0-9_.-]+")
_DEVICE_RE = re.compile(r"^/dev/video(\d+)$")
# --------------------------------------------------------------------------- source description


@dataclass(frozen=True)
class SourceSpec:
    """What ``EI_SOURCE`` names: its kind, what cv2 opens, and a form safe to log and publish."""

    kind: str  # "file", "webcam" or "url"
    target: str | int  # path, device index/path, or the full URL (may hold credentials)
    public: str  # file basename, device, or URL with secrets masked

    @property
    def live(self) -> bool:
        """Live sources produce frames at their own pace and are reopened when they fail."""
        return self.kind != "file"


def parse_source(text: str) -> SourceSpec:
    """Classify ``EI_SOURCE``: a webcam index or ``/dev/videoN``, a stream URL, or a file path."""
    text = text.strip()
    if not text:
        raise ConfigError("EI_SOURCE (--source) is required: a video file, a webcam index "
                          "(0, 1, ...) or an rtsp:// / http(s):// URL")
    if text.isdigit():
        return SourceSpec("webcam", int(text), text)
    if _DEVICE_RE.match(text):
        return SourceSpec("webcam", text, text)
    if "://" in text:
        scheme = urlsplit(text).scheme.lower()
        if scheme == "file":
            path = urlsplit(text).path
            return SourceSpec("file", path, Path(path).name)
        if scheme not in URL_SCHEMES:
            raise ConfigError(f"EI_SOURCE={redact_url(text)!r} is invalid: unsupported "
                              f"scheme {scheme!r}; use one of {', '.join(URL_SCHEMES)}")
        problem = ambiguous_credentials(text)
        if problem:
            raise ConfigError(f"EI_SOURCE is invalid: {problem} (the value is not shown)")
        return SourceSpec("url", text, redact_url(text))
    return SourceSpec("file", text, Path(text).name)


def sanitize_id(text: str, fallback: str = "stream") -> str:
    """Turn ``text`` into a valid stream id; long names keep a hash so they stay distinct."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    name = _UNSAFE_ID_CHARS.sub("-", ascii_text).strip("-.")
    if not name:
        return fallback
    if len(name) > 64:
        digest = hashlib.sha1(text.encode()).hexdigest()[:8]
        name = name[:55].rstrip("-.") + "-" + digest
    assert STREAM_ID_RE.match(name), name
    return name


def derive_stream_id(spec: SourceSpec) -> str:
    """Default stream id: file stem, ``camN`` for webcams, host[-port][-path] for URLs.

    Credentials and query strings never take part, so the id is safe to show anywhere.
    """
    if spec.kind == "file":
        return sanitize_id(Path(str(spec.target)).stem)
    if spec.kind == "webcam":
        m = _DEVICE_RE.match(str(spec.target))
        return f"cam{m.group(1) if m else spec.target}"
    parts = urlsplit(str(spec.target))
    pieces = [parts.hostname or "url"]
    if parts.port:
        pieces.append(str(parts.port))
    pieces += [p for p in parts.path.split("/") if p]
    return sanitize_id("-".join(pieces), fallback="url")


# --------------------------------------------------------------------------- pacing


class Pacer:
    """A drift-free send schedule: slot ``k`` is due at ``start + k / fps``.

    Slots are computed from the schedule, not from the last send, so sleep and encode jitter
    does not accumulate. Callers never sleep when behind; when more than one period late the
    schedule re-anchors at now instead of bursting to catch up. ``fps <= 0`` means every
    frame is due at once (the source paces itself).
    """

    def __init__(self, fps: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.period = 1.0 / fps if fps > 0 else 0.0
        self.clock = clock
        self._next: float | None = None

    def due_in(self) -> float:
        """Seconds until the next slot; 0 when it is due or overdue."""
        if self._next is None or self.period == 0:
            return 0.0
        return max(0.0, self._next - self.clock())

    def mark(self) -> None:
        """Consume the current slot (a frame was taken)."""
        now = self.clock()
        if self._next is None or now - self._next > self.period:
            self._next = now
        self._next += self.period


# --------------------------------------------------------------------------- capture


class Capture(Protocol):
    """The part of ``cv2.VideoCapture`` the stream uses (tests pass fakes)."""

    def isOpened(self) -> bool: ...  # noqa: N802 (cv2's name)

    def read(self) -> tuple[bool, Any]: ...

    def grab(self) -> bool: ...

    def retrieve(self) -> tuple[bool, Any]: ...

    def get(self, prop: int) -> float: ...

    def release(self) -> None: ...


def open_capture(spec: SourceSpec) -> Capture:
    """Open ``spec`` with OpenCV; URLs go through FFmpeg with open and read timeouts."""
    cap: Any
    if spec.kind == "url":
        cap = cv2.VideoCapture(str(spec.target), cv2.CAP_FFMPEG,
                               [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, URL_TIMEOUT_MS,
                                cv2.CAP_PROP_READ_TIMEOUT_MSEC, URL_TIMEOUT_MS])
    elif isinstance(spec.target, int):
        cap = cv2.VideoCapture(spec.target)
    else:
        cap = cv2.VideoCapture(spec.target)
    return cap


class Read(enum.Enum):
    FRAME = "frame"  # an image came back
    SKIPPED = "skipped"  # a live frame was grabbed but not wanted (pacing)
    ERROR = "error"  # a read failed; the source may recover
    END = "end"  # a file has no more frames


def _valid_fps(value: float) -> float:
    """Capture fps, or 0 when the backend reports nonsense (0, NaN, thousands)."""
    return value if 0 < value <= 1000 else 0.0


class Source:
    """One opened video source: reads frames and says whether a failure is an end or an error."""

    def __init__(self, spec: SourceSpec,
                 opener: Callable[[SourceSpec], Capture] = open_capture) -> None:
        self.spec = spec
        self.opener = opener
        self.fps = 0.0
        self.size = (0, 0)
        self.frame_count = 0
        self._cap: Capture | None = None

    @property
    def is_open(self) -> bool:
        return self._cap is not None

    def open(self) -> bool:
        """(Re)open the source; False when it cannot be opened now."""
        self.close()
        cap = self.opener(self.spec)
        if not cap.isOpened():
            cap.release()
            return False
        self._cap = cap
        self.fps = _valid_fps(cap.get(cv2.CAP_PROP_FPS))
        self.size = (int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)),
                     int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)))
        self.frame_count = max(0, int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0))
        return True

    def read(self, want: bool = True) -> tuple[Read, Any]:
        """Next frame. Live sources always grab (so buffered frames never go stale) and decode
        only when ``want``; a file is read frame by frame at the caller's pace."""
        cap = self._cap
        if cap is None:
            return Read.ERROR, None
        if self.spec.live:
            if not cap.grab():
                return Read.ERROR, None
            if not want:
                return Read.SKIPPED, None
            ok, image = cap.retrieve()
            return (Read.FRAME, image) if ok else (Read.ERROR, None)
        ok, image = cap.read()
        if ok:
            return Read.FRAME, image
        position = int(cap.get(cv2.CAP_PROP_POS_FRAMES) or 0)
        if self.frame_count > 0 and position < self.frame_count - 1:
            return Read.ERROR, None  # a broken frame mid-file; the next read moves on
        return Read.END, None

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None


def reopen_delay(failures: int) -> float:
    """Seconds before reopening a live source after ``failures`` failed tries (capped)."""
    return min(REOPEN_CAP, REOPEN_BASE * 2 ** min(max(failures - 1, 0), 16))


# --------------------------------------------------------------------------- the service


class StreamService:
    """Capture → encode once → push to every type's queue, with registry heartbeats.

    One thread, one loop: each turn checks ``runtime.stop``, heartbeats when due and does one
    step (wait for a slot, read, publish, or reopen). Redis failures and source failures each
    have their own backoff so neither stops the other.
    """

    def __init__(self, settings: StreamSettings, runtime: ServiceRuntime, client: redis.Redis,
                 source: Source, stream_id: str) -> None:
        self.settings = settings
        self.runtime = runtime
        self.stop = runtime.stop
        self.source = source
        self.stream_id = stream_id
        self.types = list(dict.fromkeys(settings.types))
        self.queues = [FrameQueue(client, t, settings.queue_maxlen) for t in self.types]
        self.registry = StreamRegistry(client)
        self.metrics = StreamMetrics(runtime.registry, stream_id)
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
        """Encode once and push one Frame per type in one round trip (Redis is usable)."""
        seq = self.seq
        self.seq += 1
        encoded = encode_jpeg(image, self.settings.max_width, self.settings.jpeg_quality)
        if encoded is None:
            self._capture_error("undecodable or empty frame")
            return
        jpeg, w, h = encoded
        try:
            messages = [Frame(self.stream_id, t, seq, captured, w, h, jpeg).encode()
                        for t in self.types]
        except InvalidMessage as exc:
            self._capture_error(f"frame {seq} not sendable: {exc}")
            return
        try:
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
        return {
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
            self.registry.remove(self.stream_id)
        except REDIS_DOWN_ERRORS as exc:
            log.warning("stream %s: could not unregister (%s); the entry expires in %.0f s",
                        self.stream_id, exc, self.registry.ttl)
        log.info("stream %s: stopped after %d frames sent, %d capture errors", self.stream_id,
                 self.sent, self.errors)


def main(argv: list[str]) -> int:
    """``ei stream``: parse settings once, then stream until SIGTERM/SIGINT (exit 0)."""
    settings = parse_settings(StreamSettings, argv, prog="ei stream")
    spec = parse_source(settings.source)
    stream_id = settings.stream_id or derive_stream_id(spec)
    setup_logging(settings.log_level)
    runtime = ServiceRuntime("stream", drain_timeout=settings.drain_timeout)
    runtime.install_signal_handlers()
    runtime.serve_health(settings.metrics_host, settings.metrics_port)
    # One quick retry covers a stale pooled connection; longer outages are the loop's Backoff,
    # so capture never stalls inside redis-py's own retries.
    client = connect(settings.redis_url, retries=1)
    log.info("stream %s: Redis %s", stream_id, redact_url(settings.redis_url))
    try:
        return (StreamService(settings, runtime, client, Source(spec), stream_id).run()
                or runtime.exit_code)
    finally:
        client.close()
        runtime.close()
