"""What ``EI_SOURCE`` names (a file, a webcam or a stream URL) and the capture that reads it.

A live source (webcam, URL) produces frames at its own pace and is reopened when it fails; a
file is read at the caller's pace and can tell a broken frame from its end.
"""

from __future__ import annotations

import enum
import hashlib
import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

import cv2

from ...core.errors import ConfigError
from ...core.keys import STREAM_ID_RE
from ...core.redact import ambiguous_credentials, redact_url

#: Schemes handed to FFmpeg as network streams; anything else without ``://`` is a file path.
URL_SCHEMES = ("rtsp", "rtsps", "rtmp", "rtmps", "http", "https", "udp", "tcp", "srt")
#: FFmpeg open/read timeouts for URLs by default (EI_SOURCE_TIMEOUT), so a dead camera cannot
#: hang the loop forever.
URL_TIMEOUT_MS = 5000
#: Reopen delays of a failed live source: 0.5 s doubling up to this cap.
REOPEN_BASE = 0.5
REOPEN_CAP = 10.0

_UNSAFE_ID_CHARS = re.compile(r"[^A-Za-z0-9_.-]+")
_DEVICE_RE = re.compile(r"^/dev/video(\d+)$")


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
    if _DEVICE_RE.fullmatch(text):
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
    assert STREAM_ID_RE.fullmatch(name), name
    return name


def derive_stream_id(spec: SourceSpec) -> str:
    """Default stream id: file stem, ``camN`` for webcams, host[-port][-path] for URLs.

    Credentials and query strings never take part, so the id is safe to show anywhere.
    """
    if spec.kind == "file":
        return sanitize_id(Path(str(spec.target)).stem)
    if spec.kind == "webcam":
        m = _DEVICE_RE.fullmatch(str(spec.target))
        return f"cam{m.group(1) if m else spec.target}"
    parts = urlsplit(str(spec.target))
    pieces = [parts.hostname or "url"]
    if parts.port:
        pieces.append(str(parts.port))
    pieces += [p for p in parts.path.split("/") if p]
    return sanitize_id("-".join(pieces), fallback="url")


class Capture(Protocol):
    """The part of ``cv2.VideoCapture`` the stream uses (tests pass fakes)."""

    def isOpened(self) -> bool: ...  # noqa: N802 (cv2's name)

    def read(self) -> tuple[bool, Any]: ...

    def grab(self) -> bool: ...

    def retrieve(self) -> tuple[bool, Any]: ...

    def get(self, prop: int) -> float: ...

    def release(self) -> None: ...


def open_capture(spec: SourceSpec, timeout_ms: int = URL_TIMEOUT_MS) -> Capture:
    """Open ``spec`` with OpenCV; URLs go through FFmpeg with open and read timeouts
    (``EI_SOURCE_TIMEOUT``)."""
    cap: Any
    if spec.kind == "url":
        cap = cv2.VideoCapture(str(spec.target), cv2.CAP_FFMPEG,
                               [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, timeout_ms,
                                cv2.CAP_PROP_READ_TIMEOUT_MSEC, timeout_ms])
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
