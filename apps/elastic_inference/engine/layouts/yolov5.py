"""YOLOv5 / YOLOv7: one output ``[1, N, 5 + nc]``, rows ``cx, cy, w, h, obj, cls...``.

Boxes are already decoded (input pixels), objectness and class scores already sigmoids, as
the Ultralytics and YOLOv7 ONNX exports leave them; a box's class score is ``obj * cls``.
Three anchors per cell, so ``N`` is three times the grid count (25,200 at 640x640).

Told apart from YOLOX (same row shape) by that count: ``N`` equal to the anchor-free grid
count over ``strides`` is YOLOX, anything else is this layout (see :mod:`.yolox`). Told
apart from a transposed YOLOv8 ``[1, N, 4 + nc]`` only by the number of labels: with labels
and ``C == 4 + len(labels)`` it is YOLOv8 (see :mod:`.yolov8`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from ...core.result import Detection
from ..postprocess import best_class
from .base import (
    Context,
    FloatArray,
    InputDefaults,
    Output,
    allowed_classes,
    cxcywh_to_xyxy,
    finish,
    grid_count,
    no_fit,
    rank3,
)

NAME = "yolov5"
READS = "[1, N, 5+nc] (cx, cy, w, h in input pixels, objectness, class scores)"
#: Ultralytics exports: RGB, 0..1.
DEFAULTS = InputDefaults(color="RGB", mean=0.0, scale=255.0)


def objectness_candidates(
    rows: FloatArray, ctx: Context, allowed: npt.NDArray[np.intp]
) -> tuple[npt.NDArray[np.intp], FloatArray, npt.NDArray[np.intp]]:
    """``[N, 5 + nc]`` rows -> (row index, score, class) of the rows over the threshold.

    ``obj * cls <= obj``, so rows are first cut on objectness alone (cheap: most of the
    25,200 go there) and the class product runs only on the survivors.
    """
    cand = np.flatnonzero(rows[:, 4] >= ctx.threshold)
    classes, cls_score = best_class(rows[cand, 5:], allowed)
    scores = (rows[cand, 4] * cls_score).astype(np.float32)
    keep = scores >= ctx.threshold
    return cand[keep], scores[keep], classes[keep]


@dataclass(frozen=True)
class ObjectnessDecoder:
    """Decoded rows with objectness (YOLOv5/v7, and YOLOX exported with its decoding)."""

    outputs: tuple[int, ...]
    ctx: Context
    allowed: npt.NDArray[np.intp]

    def __call__(self, tensors: Sequence[npt.ArrayLike]) -> list[Detection]:
        t = np.asarray(tensors[0], dtype=np.float32)
        rows = t.reshape(-1, t.shape[-1])
        idx, scores, classes = objectness_candidates(rows, self.ctx, self.allowed)
        return finish(cxcywh_to_xyxy(rows[idx, :4]), scores, classes, self.ctx)


def row_candidates(outputs: Sequence[Output]) -> list[Output]:
    """``[1, N, C]`` outputs with more rows than columns and room for 5 + 1 values."""
    return [
        o for o in rank3(outputs) if o.shape[2] >= 6 and (o.shape[1] < 0 or o.shape[1] > o.shape[2])
    ]


def split_head(out: Output, outputs: Sequence[Output]) -> bool:
    """Another ``[1, N, *]`` output with the same ``N``: boxes and scores apart, as raw SSD
    heads are (BlazeFace's ``[1, 896, 16]`` + ``[1, 896, 1]``), not one YOLO head."""
    return any(o is not out and o.shape[1] == out.shape[1] for o in rank3(outputs))


def is_anchor_free_count(n: int, ctx: Context) -> bool:
    w, h = ctx.input_size
    return n > 0 and n == grid_count(w, h, ctx.options.strides)


class YoloV5Layout:
    name = NAME
    reads = READS
    input_defaults = DEFAULTS

    def recognise(
        self, outputs: Sequence[Output], ctx: Context, forced: bool
    ) -> ObjectnessDecoder | None:
        for out in row_candidates(outputs):
            n, c = out.shape[1], out.shape[2]
            if not forced:
                if split_head(out, outputs) or is_anchor_free_count(n, ctx):
                    continue  # one row per cell: YOLOX (the documented rule)
                if ctx.labels and c == 4 + len(ctx.labels):
                    continue  # a transposed YOLOv8 head
            return ObjectnessDecoder((out.index,), ctx, allowed_classes(ctx, c - 5))
        if forced:
            raise no_fit(ctx, outputs, NAME, READS)
        return None


LAYOUT = YoloV5Layout()
