"""A synthetic scene with exact truth: people cut from vtest.avi walking straight paths.

The background is the per-pixel median of frames spread over ``vtest.avi`` (the people move,
the square does not, so the median is the empty square). The people are crops of boxes from
``tests/data/vtest-truth.json`` (checked by eye, +-5 px), pasted whole at a place that moves
linearly from a start to an end point between two frames; the nearer one (lower feet) is
pasted last, so it hides the other where they overlap, as in a real scene. The truth per frame
is each walker's pasted box, with its id; a line's crossings are counted from the walkers'
start and end points alone (straight paths), not from the frames.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from elastic_inference.cli.models_eval import read_frames
from elastic_inference.core.truth import load_truth

REPO = Path(__file__).resolve().parent.parent
TRUTH = REPO / "tests" / "data" / "vtest-truth.json"
# (frame, index of the box in that frame's truth): people standing alone, whole, upright.
CROPS = ((0, 0), (0, 1), (0, 2), (20, 0), (20, 1))


@dataclass(frozen=True)
class Walker:
    """One person crossing the scene: feet (bottom centre) from ``start`` to ``end``, in
    pixels, visible from frame ``first`` to ``last`` inclusive."""

    id: int
    crop: int
    start: tuple[float, float]
    end: tuple[float, float]
    first: int
    last: int

    def feet(self, frame: int) -> tuple[float, float] | None:
        if not self.first <= frame <= self.last:
            return None
        f = (frame - self.first) / max(self.last - self.first, 1)
        return (self.start[0] + f * (self.end[0] - self.start[0]),
                self.start[1] + f * (self.end[1] - self.start[1]))


# Five walkers over 768x576: 1 and 2 pass each other on the same level just left of the
# middle line, so the nearer one hides the other for a few frames; 4 walks down, near no line.
WALKERS = (
    Walker(1, 0, (120, 430), (640, 450), 0, 59),
    Walker(2, 1, (660, 446), (110, 440), 4, 63),
    Walker(3, 2, (700, 250), (250, 270), 10, 69),
    Walker(4, 3, (200, 200), (230, 560), 0, 49),
    Walker(5, 4, (80, 330), (520, 320), 20, 69),
)
FRAMES = 70


@dataclass(frozen=True)
class Scene:
    """Rendered JPEG frames and the exact truth: per frame, walker id -> box (pixels)."""

    jpegs: tuple[bytes, ...]
    truth: tuple[dict[int, tuple[float, float, float, float]], ...]
    size: tuple[int, int]


def background(video: Path, count: int = 40, step: int = 19) -> np.ndarray:
    """The median of ``count`` frames ``step`` apart: the square without its people."""
    frames = [image for _, image in read_frames(video, range(0, count * step, step))]
    return np.median(np.stack(frames), axis=0).astype(np.uint8)


def people(video: Path) -> list[np.ndarray]:
    """The crops of :data:`CROPS`, from the frames the truth names."""
    truth = load_truth(TRUTH)
    wanted = sorted({f for f, _ in CROPS})
    images = dict(read_frames(video, wanted))
    out = []
    for frame, index in CROPS:
        box = [b for b in truth.frames[frame] if b.label == "person"][index]
        assert not box.ignore
        x1, y1, x2, y2 = (int(v) for v in box.box)
        out.append(images[frame][y1:y2, x1:x2].copy())
    return out


def crossings(line: tuple[tuple[float, float], tuple[float, float]],
              size: tuple[int, int]) -> dict[str, int]:
    """Exact crossings of a vertical line by the walkers, from their paths alone:
    ``a->b`` for a line drawn top to bottom is a walk from the screen's right to its left."""
    (ax, ay), (bx, by) = line
    assert ax == bx and ay < by, "the truth is worked out for a vertical line drawn downwards"
    x = ax * size[0]
    out = {"a->b": 0, "b->a": 0}
    for w in WALKERS:
        if (w.start[0] - x) * (w.end[0] - x) < 0:
            out["a->b" if w.start[0] > x else "b->a"] += 1
    return out


def render(video: Path, quality: int = 80) -> Scene:
    """Every frame of the scene as JPEG, with the walkers' boxes."""
    bg = background(video)
    crops = people(video)
    height, width = bg.shape[:2]
    jpegs, truth = [], []
    for frame in range(FRAMES):
        image = bg.copy()
        boxes: dict[int, tuple[float, float, float, float]] = {}
        placed = [(w, w.feet(frame)) for w in WALKERS]
        for w, feet in sorted(((w, f) for w, f in placed if f is not None),
                              key=lambda item: item[1][1]):  # far (higher) ones first
            crop = crops[w.crop]
            h, cw = crop.shape[:2]
            x1, y1 = round(feet[0] - cw / 2), round(feet[1] - h)
            cx1, cy1 = max(x1, 0), max(y1, 0)
            cx2, cy2 = min(x1 + cw, width), min(y1 + h, height)
            image[cy1:cy2, cx1:cx2] = crop[cy1 - y1:cy2 - y1, cx1 - x1:cx2 - x1]
            boxes[w.id] = (float(cx1), float(cy1), float(cx2), float(cy2))
        ok, encoded = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
        assert ok
        jpegs.append(encoded.tobytes())
        truth.append(boxes)
    return Scene(tuple(jpegs), tuple(truth), (width, height))
