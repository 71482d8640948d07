"""Draw detections onto frames, for the gateway's MJPEG/snapshot endpoints.

Workers never call this (they pass the original JPEG through); the SPA draws on a canvas. Kept
free of openvino so the gateway can import it.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable

import cv2
import numpy as np
import numpy.typing as npt

from ..core.errors import InvalidMessage
from ..core.jpeg import DEFAULT_MAX_PIXELS, check_jpeg
from ..core.result import Detection

Image = npt.NDArray[np.uint8]


def label_colour(label: str) -> tuple[int, int, int]:
    """A bright BGR colour that is stable for a label across processes and restarts.

    crc32 rather than ``hash()``: Python salts string hashes per process.
    """
    hue = zlib.crc32(label.encode("utf-8")) % 180
    hsv = np.array([[[hue, 220, 255]]], dtype=np.uint8)
    b, g, r = cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)[0, 0]
    return int(b), int(g), int(r)


def draw_detections(image_bgr: Image, detections: Iterable[Detection]) -> Image:
    """Return a copy of ``image_bgr`` with each box, label and score drawn on it."""
    out = np.ascontiguousarray(image_bgr).copy()
    h, w = out.shape[:2]
    thickness = max(1, round(min(w, h) / 320))
    font_scale = max(0.4, min(w, h) / 900)
    for det in detections:
        x1, y1, x2, y2 = det.box
        p1 = (round(x1 * (w - 1)), round(y1 * (h - 1)))
        p2 = (round(x2 * (w - 1)), round(y2 * (h - 1)))
        colour = label_colour(det.label)
        cv2.rectangle(out, p1, p2, colour, thickness, cv2.LINE_AA)
        text = f"{det.label} {det.score:.2f}"
        (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, font_scale, 1)
        ty = p1[1] - 2 if p1[1] - th - base - 2 >= 0 else p1[1] + th + base + 2
        cv2.rectangle(out, (p1[0], ty - th - base), (p1[0] + tw + 2, ty + 2), colour, cv2.FILLED)
        cv2.putText(
            out,
            text,
            (p1[0] + 1, ty - base + 1),
            cv2.FONT_HERSHEY_SIMPLEX,
            font_scale,
            (0, 0, 0),
            1,
            cv2.LINE_AA,
        )
    return out


def annotate_jpeg(jpeg: bytes, detections: Iterable[Detection], quality: int = 80) -> bytes:
    """Decode, draw, re-encode. Raises ValueError when ``jpeg`` is not a decodable image,
    or declares more than the default pixel cap (a decode bomb in Redis must not take the
    gateway's memory: the header is read first, see core.jpeg)."""
    try:
        check_jpeg(jpeg, DEFAULT_MAX_PIXELS)
        decoded = cv2.imdecode(np.frombuffer(jpeg, dtype=np.uint8), cv2.IMREAD_COLOR)
    except (InvalidMessage, cv2.error) as exc:
        raise ValueError(f"not a decodable JPEG image: {exc}") from exc
    if decoded is None:
        raise ValueError("not a decodable JPEG image")
    frame = np.asarray(decoded, dtype=np.uint8)  # no copy: narrows cv2's loose typing
    ok, buf = cv2.imencode(
        ".jpg", draw_detections(frame, detections), [cv2.IMWRITE_JPEG_QUALITY, quality]
    )
    if not ok:
        raise ValueError("JPEG encoding failed")
    return buf.tobytes()
