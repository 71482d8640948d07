"""JPEGs for tests: frames of samples/vtest.avi, decoding, and crafted ones (real encoder output
with a rewritten frame header: decode bombs)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]


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


def decode(jpeg: bytes) -> np.ndarray:
    img = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert img is not None
    return img


def vtest_jpegs(n: int, width: int = 320) -> list[bytes]:
    """The first ``n`` frames of samples/vtest.avi as JPEGs ``width`` pixels wide."""
    cap = cv2.VideoCapture(str(REPO / "samples" / "vtest.avi"))
    out: list[bytes] = []
    try:
        while len(out) < n:
            ok, frame = cap.read()
            assert ok, "samples/vtest.avi is missing or short: run tools/download-samples.sh"
            h = round(frame.shape[0] * width / frame.shape[1])
            ok, buf = cv2.imencode(".jpg", cv2.resize(frame, (width, h)),
                                   [cv2.IMWRITE_JPEG_QUALITY, 80])
            assert ok
            out.append(buf.tobytes())
    finally:
        cap.release()
    return out
