"""Frame messages: what stream services push and workers pop.

v1 carries the JPEG: a msgpack map ``{v: 1, stream, type, seq, ts, w, h, jpeg}`` (analysis
jobs, and any producer of its own). v2 refers to it: ``{v: 2, stream, type, seq, ts, w, h,
ref}``, where ``ref`` is the id of the JPEG's entry in the stream's frame store
(``ei:frames:{stream}``, core/framestore.py), so a frame fed to three types is stored once.

Both sides validate, so a bad producer can never crash a worker: :func:`decode` raises
:class:`InvalidMessage` instead. The JPEG's header is read too (:func:`decode` for v1,
:func:`check_fetched` once a v2 frame's JPEG is fetched), so a frame whose JPEG declares another
size than ``w``x``h`` or more pixels than allowed (a decode bomb) is refused before anything
decodes it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import msgpack

from .errors import InvalidMessage
from .jpeg import DEFAULT_MAX_PIXELS, check_jpeg
from .keys import check_entry_id, check_stream_id, check_type

VERSION = 1
#: The version of a frame that refers to its JPEG in the frame store.
REF_VERSION = 2
MAX_JPEG_BYTES = 8 * 1024 * 1024
MAX_SIDE = 16384
_JPEG_MAGIC = b"\xff\xd8"


@dataclass(frozen=True)
class Frame:
    """One captured frame on its way to one inference type: with its JPEG, or with ``ref``
    (the entry id in the frame store) and an empty ``jpeg`` until it is fetched."""

    stream: str
    type: str
    seq: int
    ts: float
    w: int
    h: int
    jpeg: bytes
    ref: str = ""

    def __post_init__(self) -> None:
        check_stream_id(self.stream)
        check_type(self.type)
        if not isinstance(self.seq, int) or isinstance(self.seq, bool) or self.seq < 0:
            raise InvalidMessage(f"seq must be a non-negative int, got {self.seq!r}")
        if not isinstance(self.ts, (int, float)) or not math.isfinite(self.ts) or self.ts <= 0:
            raise InvalidMessage(f"ts must be a positive epoch time, got {self.ts!r}")
        for name, side in (("w", self.w), ("h", self.h)):
            if not isinstance(side, int) or isinstance(side, bool) or not 0 < side <= MAX_SIDE:
                raise InvalidMessage(f"{name} must be an int in 1..{MAX_SIDE}, got {side!r}")
        if not isinstance(self.jpeg, bytes):
            raise InvalidMessage("jpeg must be bytes")
        if self.ref:
            check_entry_id(self.ref, "frame ref")
            if not self.jpeg:
                return
        _check_bytes(self.jpeg)

    def encode(self) -> bytes:
        """Serialise to the v2 map when the frame has a ``ref`` (no JPEG), else to v1."""
        data: dict[str, Any] = {
            "v": REF_VERSION if self.ref else VERSION,
            "stream": self.stream,
            "type": self.type,
            "seq": self.seq,
            "ts": float(self.ts),
            "w": self.w,
            "h": self.h,
        }
        if self.ref:
            data["ref"] = self.ref
        else:
            data["jpeg"] = self.jpeg
        return msgpack.packb(data, use_bin_type=True)


_FIELDS = ("stream", "type", "seq", "ts", "w", "h")


def decode(raw: bytes, max_pixels: int = DEFAULT_MAX_PIXELS) -> Frame:
    """Parse and validate a v1 or v2 frame message; raise InvalidMessage on anything else,
    including (v1) a JPEG whose header disagrees with ``w``/``h`` or exceeds ``max_pixels``.
    A v2 frame comes back with an empty ``jpeg``: fetch it, then :func:`check_fetched`."""
    try:
        data: Any = msgpack.unpackb(raw, raw=False, strict_map_key=True)
    except (ValueError, msgpack.UnpackException, TypeError) as exc:
        raise InvalidMessage(f"frame is not valid msgpack: {exc}") from exc
    if not isinstance(data, dict):
        raise InvalidMessage("frame is not a msgpack map")
    version = data.get("v")
    if version not in (VERSION, REF_VERSION):
        raise InvalidMessage(f"unsupported frame version {version!r} (expected {VERSION} or "
                             f"{REF_VERSION})")
    payload = "ref" if version == REF_VERSION else "jpeg"
    missing = [f for f in (*_FIELDS, payload) if f not in data]
    if missing:
        raise InvalidMessage(f"frame lacks fields {missing}")
    ts = data["ts"]
    if isinstance(ts, int) and not isinstance(ts, bool):
        ts = float(ts)
    frame = Frame(
        stream=data["stream"],
        type=data["type"],
        seq=data["seq"],
        ts=ts,
        w=data["w"],
        h=data["h"],
        jpeg=data["jpeg"] if payload == "jpeg" else b"",
        ref=data["ref"] if payload == "ref" else "",
    )
    if frame.jpeg:
        check_jpeg(frame.jpeg, max_pixels, (frame.w, frame.h))
    return frame


def check_fetched(frame: Frame, jpeg: bytes, max_pixels: int = DEFAULT_MAX_PIXELS) -> None:
    """Check the JPEG fetched for ``frame`` (v2) as :func:`decode` checks a v1 frame's;
    InvalidMessage when it is not a JPEG of the frame's size. The worker keeps the JPEG beside
    the frame instead of in a new one: a frame is validated once (rebuilding it with the JPEG
    cost 9 us a frame, this 3)."""
    _check_bytes(jpeg)
    check_jpeg(jpeg, max_pixels, (frame.w, frame.h))


def _check_bytes(jpeg: bytes) -> None:
    if not 0 < len(jpeg) <= MAX_JPEG_BYTES:
        raise InvalidMessage(f"jpeg size {len(jpeg)} outside 1..{MAX_JPEG_BYTES} bytes")
    if not jpeg.startswith(_JPEG_MAGIC):
        raise InvalidMessage("jpeg does not start with the JPEG SOI marker")
