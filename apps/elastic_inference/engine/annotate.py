"""Draw detections onto frames, for the gateway's MJPEG/snapshot endpoints, and tracks onto
event snapshots (``ei track``).

Workers never call this (they pass the original JPEG through); the SPA draws on a canvas. Kept
free of openvino so the gateway can import it.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable

import cv2
import numpy as np
import numpy.typing as npt

from ..core.analytics.tracker import Track
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


#: The highlighted track of an event snapshot: white, whatever its label's colour.
HIGHLIGHT = (255, 255, 255)


def _draw_box(out: Image, box: tuple[float, float, float, float], text: str,
              colour: tuple[int, int, int], thickness: int, font_scale: float) -> None:
    h, w = out.shape[:2]
    x1, y1, x2, y2 = box
    p1 = (round(x1 * (w - 1)), round(y1 * (h - 1)))
    p2 = (round(x2 * (w - 1)), round(y2 * (h - 1)))
    cv2.rectangle(out, p1, p2, colour, thickness, cv2.LINE_AA)
    (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, font_scale, 1)
    ty = p1[1] - 2 if p1[1] - th - base - 2 >= 0 else p1[1] + th + base + 2
    cv2.rectangle(out, (p1[0], ty - th - base), (p1[0] + tw + 2, ty + 2), colour, cv2.FILLED)
    cv2.putText(out, text, (p1[0] + 1, ty - base + 1), cv2.FONT_HERSHEY_SIMPLEX, font_scale,
                (0, 0, 0), 1, cv2.LINE_AA)


def _sizes(image: Image) -> tuple[int, float]:
    h, w = image.shape[:2]
    return max(1, round(min(w, h) / 320)), max(0.4, min(w, h) / 900)


def draw_detections(image_bgr: Image, detections: Iterable[Detection]) -> Image:
    """Return a copy of ``image_bgr`` with each box, label and score drawn on it."""
    out = np.ascontiguousarray(image_bgr).copy()
    thickness, font_scale = _sizes(out)
    for det in detections:
        _draw_box(out, det.box, f"{det.label} {det.score:.2f}", label_colour(det.label),
                  thickness, font_scale)
    return out


def draw_tracks(image_bgr: Image, tracks: Iterable[Track], highlight: int | None) -> Image:
    """A copy of ``image_bgr`` with each track's box and ``#id label``; the track whose id is
    ``highlight`` drawn last (on top), white and three times as thick."""
    out = np.ascontiguousarray(image_bgr).copy()
    thickness, font_scale = _sizes(out)
    ordered = sorted(tracks, key=lambda t: t.id == highlight)
    for t in ordered:
        lit = t.id == highlight
        _draw_box(out, t.box, f"#{t.id} {t.label}", HIGHLIGHT if lit else label_colour(t.label),
                  3 * thickness if lit else thickness, font_scale)
    return out


def _decode(jpeg: bytes) -> Image:
    """The image of ``jpeg``; ValueError when it is not a decodable image, or declares more
    than the default pixel cap (a decode bomb in Redis must not take the reader's memory: the
    header is read first, see core.jpeg)."""
    try:
        check_jpeg(jpeg, DEFAULT_MAX_PIXELS)
        decoded = cv2.imdecode(np.frombuffer(jpeg, dtype=np.uint8), cv2.IMREAD_COLOR)
    except (InvalidMessage, cv2.error) as exc:
        raise ValueError(f"not a decodable JPEG image: {exc}") from exc
    if decoded is None:
        raise ValueError("not a decodable JPEG image")
    return np.asarray(decoded, dtype=np.uint8)  # no copy: narrows cv2's loose typing


def _encode(image: Image, quality: int) -> bytes:
    ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError("JPEG encoding failed")
    return buf.tobytes()


def annotate_jpeg(jpeg: bytes, detections: Iterable[Detection], quality: int = 80) -> bytes:
    """Decode, draw, re-encode; ValueError when ``jpeg`` is not a decodable image."""
    return _encode(draw_detections(_decode(jpeg), detections), quality)


#: Event snapshots are kept for days in Redis: at most this wide, and this JPEG quality.
SNAPSHOT_WIDTH = 640
SNAPSHOT_QUALITY = 75


def track_snapshot(jpeg: bytes, tracks: Iterable[Track], highlight: int | None,
                   quality: int = SNAPSHOT_QUALITY, max_width: int = SNAPSHOT_WIDTH) -> bytes:
    """An event's snapshot: the frame, no wider than ``max_width``, with every track drawn
    and ``highlight`` lit; ValueError when ``jpeg`` is not a decodable image."""
    image = _decode(jpeg)
    h, w = image.shape[:2]
    if w > max_width:
        size = (max_width, max(1, round(h * max_width / w)))
        image = np.asarray(cv2.resize(image, size, interpolation=cv2.INTER_AREA), dtype=np.uint8)
    return _encode(draw_tracks(image, tracks, highlight), quality)
