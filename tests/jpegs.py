"""Crafted JPEGs for tests: real encoder output with a rewritten frame header (decode bombs)."""

from __future__ import annotations

import cv2
import numpy as np


def with_size(jpeg: bytes, w: int, h: int) -> bytes:
    """``jpeg`` with its (first) SOF0 or SOF2 segment rewritten to declare ``w`` x ``h``."""
    out = bytearray(jpeg)
    i = min(i for i in (out.find(b"\xff\xc0"), out.find(b"\xff\xc2")) if i >= 0)
    out[i + 5:i + 9] = h.to_bytes(2, "big") + w.to_bytes(2, "big")
    return bytes(out)


def declaring(w: int, h: int) -> bytes:
    """A tiny valid 8x8 JPEG (a few hundred bytes) that declares ``w`` x ``h``."""
    ok, buf = cv2.imencode(".jpg", np.zeros((8, 8, 3), np.uint8))
    assert ok
    return with_size(buf.tobytes(), w, h)
