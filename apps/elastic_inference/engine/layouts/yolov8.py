"""YOLOv8 / YOLO11 (and v9/v12 exports of the same head): ``[1, 4 + nc, N]``.

Channels first: rows ``cx, cy, w, h`` (input pixels) then one score per class, already
sigmoids; no objectness. One prediction per grid cell, ``N`` = 8,400 at 640x640.

Channels first is what marks it: the other YOLO layouts have more rows than columns in the
last axis. A head transposed to ``[1, N, 4 + nc]`` looks like YOLOv5's ``[1, N, 5 + nc]``
with one class more, so it is read as YOLOv8 only when the labels say so
(``C == 4 + len(labels)``) or the sidecar forces ``"layout": "yolov8"``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from ...core.result import Detection
from .base import (
    Context,
    InputDefaults,
    Output,
    allowed_classes,
    cxcywh_to_xyxy,
    finish,
    no_fit,
    rank3,
)
from .yolov5 import split_head

NAME = "yolov8"
READS = "[1, 4+nc, N] (cx, cy, w, h in input pixels, class scores; no objectness)"
DEFAULTS = InputDefaults(color="RGB", mean=0.0, scale=255.0)


@dataclass(frozen=True)
class YoloV8Decoder:
    outputs: tuple[int, ...]
    ctx: Context
    allowed: npt.NDArray[np.intp]
    channels_first: bool

    def __call__(self, tensors: Sequence[npt.ArrayLike]) -> list[Detection]:
        t = np.asarray(tensors[0], dtype=np.float32)
        t = t.reshape(t.shape[-2], t.shape[-1])
        if not self.channels_first:
            t = t.T
        # [4 + nc, N]: best allowed class per column without transposing the whole head.
        cls = t[4 + self.allowed]
        best = np.argmax(cls, axis=0)
        score = cls[best, np.arange(cls.shape[1])]
        cand = np.flatnonzero(score >= self.ctx.threshold)
        boxes = cxcywh_to_xyxy(np.ascontiguousarray(t[:4, cand].T))
        return finish(boxes, score[cand].astype(np.float32), self.allowed[best[cand]], self.ctx)


class YoloV8Layout:
    name = NAME
    reads = READS
    input_defaults = DEFAULTS

    def recognise(
        self, outputs: Sequence[Output], ctx: Context, forced: bool
    ) -> YoloV8Decoder | None:
        for out in rank3(outputs):
            a, b = out.shape[1], out.shape[2]
            if 5 <= a and (b < 0 or a < b):
                return YoloV8Decoder((out.index,), ctx, allowed_classes(ctx, a - 4), True)
            transposed = ctx.labels and b == 4 + len(ctx.labels) and b != 5 + len(ctx.labels)
            transposed = transposed and not split_head(out, outputs)
            if b >= 5 and (a < 0 or a > b) and (transposed or forced):
                return YoloV8Decoder((out.index,), ctx, allowed_classes(ctx, b - 4), False)
        if forced:
            raise no_fit(ctx, outputs, NAME, READS)
        return None


LAYOUT = YoloV8Layout()
