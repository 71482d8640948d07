"""Result JSON v1: what workers publish for each frame.

``{v, stream, type, seq, ts_capture, ts_done, model, device, frame: {w, h}, detections}``
with boxes normalised to 0..1 as ``[x1, y1, x2, y2]``. Whoever displays draws the boxes.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from .errors import InvalidMessage
from .keys import check_stream_id, check_type

log = logging.getLogger(__name__)

VERSION = 1
Box = tuple[float, float, float, float]


@dataclass(frozen=True)
class Detection:
    """One detected object; ``box`` is ``(x1, y1, x2, y2)`` normalised to the frame size."""

    label: str
    score: float
    box: Box

    def to_json(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "score": round(float(self.score), 4),
            "box": [round(float(v), 5) for v in self.box],
        }

    @classmethod
    def from_json(cls, data: Any) -> Detection:
        if not isinstance(data, dict):
            raise InvalidMessage("detection is not an object")
        label, score, box = data.get("label"), data.get("score"), data.get("box")
        if not isinstance(label, str) or not label:
            raise InvalidMessage("detection label must be a non-empty string")
        if not isinstance(score, (int, float)) or not 0.0 <= float(score) <= 1.0:
            raise InvalidMessage("detection score must be a number in 0..1")
        if (
            not isinstance(box, list)
            or len(box) != 4
            or not all(isinstance(v, (int, float)) and math.isfinite(v) for v in box)
        ):
            raise InvalidMessage("detection box must be four finite numbers")
        x1, y1, x2, y2 = (float(v) for v in box)
        return cls(label=label, score=float(score), box=(x1, y1, x2, y2))


@dataclass(frozen=True)
class Result:
    """Detections for one frame of one stream by one inference type."""

    stream: str
    type: str
    seq: int
    ts_capture: float
    ts_done: float
    model: str
    device: str
    w: int
    h: int
    detections: tuple[Detection, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        check_stream_id(self.stream)
        check_type(self.type)

    def to_json(self) -> dict[str, Any]:
        return {
            "v": VERSION,
            "stream": self.stream,
            "type": self.type,
            "seq": self.seq,
            "ts_capture": self.ts_capture,
            "ts_done": self.ts_done,
            "model": self.model,
            "device": self.device,
            "frame": {"w": self.w, "h": self.h},
            "detections": [d.to_json() for d in self.detections],
        }

    def encode(self) -> bytes:
        return json.dumps(self.to_json(), separators=(",", ":")).encode()


def decode_result(raw: bytes | str) -> Result:
    """Parse and validate result JSON v1; raise InvalidMessage on anything else."""
    return result_from_json(parse_json(raw))


def parse_json(raw: bytes | str) -> Any:
    """``json.loads`` with InvalidMessage for bad input, for callers that keep the object."""
    try:
        return json.loads(raw)
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        raise InvalidMessage(f"result is not valid JSON: {exc}") from exc


def parse_result(raw: bytes | str) -> tuple[Result, dict[str, Any]] | None:
    """A valid result JSON v1 as (Result, the JSON object, parsed once); ``None`` otherwise.

    For readers of stored results, which skip an invalid one rather than fail.
    """
    try:
        data = parse_json(raw)
        return result_from_json(data), data
    except InvalidMessage as exc:
        log.debug("skipping an invalid result: %s", exc)
        return None


def result_from_json(data: Any) -> Result:
    """Validate an already parsed result JSON v1 object; raise InvalidMessage if it is not."""
    if not isinstance(data, dict) or data.get("v") != VERSION:
        raise InvalidMessage("result is not a v1 result object")
    try:
        frame = data["frame"]
        return Result(
            stream=data["stream"],
            type=data["type"],
            seq=int(data["seq"]),
            ts_capture=float(data["ts_capture"]),
            ts_done=float(data["ts_done"]),
            model=str(data["model"]),
            device=str(data["device"]),
            w=int(frame["w"]),
            h=int(frame["h"]),
            detections=tuple(Detection.from_json(d) for d in data["detections"]),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise InvalidMessage(f"result lacks or mistypes a field: {exc}") from exc


def box_iou(a: Box, b: Box) -> float:
    """Intersection over union of two ``(x1, y1, x2, y2)`` boxes."""
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def count_matched(reference: Sequence[Detection], candidate: Sequence[Detection],
                  min_iou: float = 0.5) -> int:
    """How many ``reference`` detections have a partner in ``candidate``: same label and
    IoU >= ``min_iou``, each candidate used once (best-scoring references first).

    How two models (FP32 and INT8, or two runs) are said to agree on one frame.
    """
    free = list(candidate)
    matched = 0
    for ref in sorted(reference, key=lambda d: -d.score):
        best, best_iou = -1, min_iou
        for i, cand in enumerate(free):
            if cand.label == ref.label:
                overlap = box_iou(ref.box, cand.box)
                if overlap >= best_iou:
                    best, best_iou = i, overlap
        if best >= 0:
            free.pop(best)
            matched += 1
    return matched
