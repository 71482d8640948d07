"""End-to-end detectors (NMS inside the model): YOLOv10, RT-DETR, D-FINE, DETR exports.

Two forms are read:

* one output ``[1, K, 6]``: rows ``x1, y1, x2, y2, score, class`` (YOLOv10; also any model
  whose graph ends in its own NMS, padded with zero-score rows);
* two outputs, boxes ``[1, K, 4]`` and scores ``[1, K, nc]`` (RT-DETR / D-FINE / DETR without
  their post-processing graph): boxes ``cx, cy, w, h`` unless the sidecar says ``xyxy``.

Units: boxes whose coordinates are all within 0..1.5 are normalised, else input pixels
(sidecar ``box_units`` fixes it). Scores: a tensor with values outside 0..1 holds logits and
gets a sigmoid (sidecar ``score_activation`` fixes it). No NMS here: these models are trained
to give one box per object, and NMS would drop true neighbours in a crowd.

A single-class YOLOv5 or YOLOX head is also ``[1, N, 6]``: it is read as such when ``N`` is
the grid count or three times it (see :mod:`.yolov5`), as end-to-end otherwise.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from ...core.result import Detection
from ..postprocess import best_class, sigmoid
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

NAME = "end2end"
READS = "[1, K, 6] (x1, y1, x2, y2, score, class) or boxes [1, K, 4] + scores [1, K, nc]"
DEFAULTS = InputDefaults(color="RGB", mean=0.0, scale=255.0)
#: Largest coordinate a normalised box may show (boxes may poke out of the image a little).
NORMALISED_MAX = 1.5


def _normalised(boxes: FloatArray, ctx: Context) -> bool:
    units = ctx.options.box_units
    if units != "auto":
        return units == "normalised"
    return boxes.size == 0 or float(np.abs(boxes).max()) <= NORMALISED_MAX


def _probabilities(scores: FloatArray, ctx: Context) -> FloatArray:
    mode = ctx.options.score_activation
    if mode == "sigmoid" or (
        mode == "auto" and scores.size and (scores.min() < 0.0 or scores.max() > 1.0)
    ):
        return sigmoid(scores)
    return scores


@dataclass(frozen=True)
class RowsDecoder:
    """``[1, K, 6]``: already one row per object."""

    outputs: tuple[int, ...]
    ctx: Context
    allowed: frozenset[int] | None

    def __call__(self, tensors: Sequence[npt.ArrayLike]) -> list[Detection]:
        rows = np.asarray(tensors[0], dtype=np.float32).reshape(-1, 6)
        # Units and activation are judged on the whole tensor, then rows are picked.
        pixels = not _normalised(rows[:, :4], self.ctx)
        scores = _probabilities(rows[:, 4], self.ctx)
        classes = rows[:, 5].astype(np.intp)
        keep = scores >= self.ctx.threshold
        if self.allowed is not None:
            keep &= np.isin(classes, list(self.allowed))
        boxes = rows[keep, :4]
        if self.ctx.options.box_format == "cxcywh":
            boxes = cxcywh_to_xyxy(boxes)
        return finish(boxes, scores[keep], classes[keep], self.ctx, pixels=pixels, suppress=False)


@dataclass(frozen=True)
class PairDecoder:
    """Boxes ``[1, K, 4]`` and per-class scores ``[1, K, nc]``."""

    outputs: tuple[int, ...]
    ctx: Context
    allowed: npt.NDArray[np.intp]

    def __call__(self, tensors: Sequence[npt.ArrayLike]) -> list[Detection]:
        boxes = np.asarray(tensors[0], dtype=np.float32).reshape(-1, 4)
        logits = np.asarray(tensors[1], dtype=np.float32)
        scores = _probabilities(logits.reshape(boxes.shape[0], -1), self.ctx)
        classes, best = best_class(scores, self.allowed)
        cand = np.flatnonzero(best >= self.ctx.threshold)
        picked = boxes[cand]
        if self.ctx.options.box_format != "xyxy":
            picked = cxcywh_to_xyxy(picked)
        pixels = not _normalised(boxes, self.ctx)
        return finish(picked, best[cand], classes[cand], self.ctx, pixels=pixels, suppress=False)


def _is_yolo_count(k: int, ctx: Context) -> bool:
    w, h = ctx.input_size
    g = grid_count(w, h, ctx.options.strides)
    return k in (g, 3 * g)


def _pair(outputs: Sequence[Output]) -> tuple[Output, Output] | None:
    """Boxes and scores outputs of the same ``K``; names decide when ``nc`` is 4 too."""
    outs = rank3(outputs)
    for box in outs:
        if box.shape[2] != 4:
            continue
        for score in outs:
            if score is box or score.shape[1] != box.shape[1] or score.shape[2] < 1:
                continue
            if score.shape[2] == 4 and not any(
                "score" in n.lower() or "logit" in n.lower() or "class" in n.lower()
                for n in score.names
            ):
                continue
            return box, score
    return None


class End2EndLayout:
    name = NAME
    reads = READS
    input_defaults = DEFAULTS

    def recognise(
        self, outputs: Sequence[Output], ctx: Context, forced: bool
    ) -> RowsDecoder | PairDecoder | None:
        pair = _pair(outputs)
        if pair is not None:
            box, score = pair
            return PairDecoder((box.index, score.index), ctx, allowed_classes(ctx, score.shape[2]))
        for out in rank3(outputs):
            if out.shape[2] == 6 and (forced or not _is_yolo_count(out.shape[1], ctx)):
                allowed = None
                if ctx.label_filter is not None:
                    allowed = frozenset(int(i) for i in allowed_classes(ctx, len(ctx.labels)))
                return RowsDecoder((out.index,), ctx, allowed)
        if forced:
            raise no_fit(ctx, outputs, NAME, READS)
        return None


LAYOUT = End2EndLayout()
