"""Frame message v1: what stream services push and workers pop.

A msgpack map ``{v, stream, type, seq, ts, w, h, jpeg}``. Both sides validate, so a bad
producer can never crash a worker: :func:`decode` raises :class:`InvalidMessage` instead. It
also reads the JPEG header, so a frame whose JPEG declares another size than ``w``x``h`` or
more pixels than allowed (a decode bomb) is refused before anything decodes it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import msgpack

from .errors import InvalidMessage
from .jpeg import DEFAULT_MAX_PIXELS, check_jpeg
from .keys import check_stream_id, check_type

VERSION = 1
MAX_JPEG_BYTES = 8 * 1024 * 1024
MAX_SIDE = 16384
_JPEG_MAGIC = b"\xff\xd8"


@dataclass(frozen=True)
class Frame:
    """One captured frame on its way to one inference type."""

    stream: str
    type: str
    seq: int
    ts: float
    w: int
    h: int
    jpeg: bytes

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
        if not 0 < len(self.jpeg) <= MAX_JPEG_BYTES:
            raise InvalidMessage(f"jpeg size {len(self.jpeg)} outside 1..{MAX_JPEG_BYTES} bytes")
        if not self.jpeg.startswith(_JPEG_MAGIC):
            raise InvalidMessage("jpeg does not start with the JPEG SOI marker")

    def encode(self) -> bytes:
        """Serialise to the v1 msgpack map."""
        return msgpack.packb(
            {
                "v": VERSION,
                "stream": self.stream,
                "type": self.type,
                "seq": self.seq,
                "ts": float(self.ts),
                "w": self.w,
                "h": self.h,
                "jpeg": self.jpeg,
            },
            use_bin_type=True,
        )


_FIELDS = ("stream", "type", "seq", "ts", "w", "h", "jpeg")


def decode(raw: bytes, max_pixels: int = DEFAULT_MAX_PIXELS) -> Frame:
    """Parse and validate a v1 frame message; raise InvalidMessage on anything else,
    including a JPEG whose header disagrees with ``w``/``h`` or exceeds ``max_pixels``."""
    try:
        data: Any = msgpack.unpackb(raw, raw=False, strict_map_key=True)
    except (ValueError, msgpack.UnpackException, TypeError) as exc:
        raise InvalidMessage(f"frame is not valid msgpack: {exc}") from exc
    if not isinstance(data, dict):
        raise InvalidMessage("frame is not a msgpack map")
    version = data.get("v")
    if version != VERSION:
        raise InvalidMessage(f"unsupported frame version {version!r} (expected {VERSION})")
    missing = [f for f in _FIELDS if f not in data]
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
        jpeg=data["jpeg"],
    )
    check_jpeg(frame.jpeg, max_pixels, (frame.w, frame.h))
    return frame
