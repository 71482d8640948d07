"""YOLOX as its official ONNX export leaves it: ``[1, N, 5 + nc]`` *before* grid decoding.

One row per grid cell (anchor-free), levels of stride 8, 16, 32 one after the other, cells
row-major: ``cx = (tx + col) * s``, ``cy = (ty + row) * s``, ``w = exp(tw) * s``,
``h = exp(th) * s`` (input pixels); objectness and class scores are already sigmoids, a box
scores ``obj * cls``. So ``N`` is the grid count, ``sum(ceil(H/s) * ceil(W/s))`` (8,400 at
640x640), which is how it is told from YOLOv5 (three anchors per cell, 3x that count).

A YOLOX exported *with* its decoding (``decode_in_inference``) has the same shape but
decoded boxes: force ``"layout": "yolov5"`` in the sidecar for it. Other strides go in the
sidecar's ``strides``. Input: BGR 0..255 without normalisation, as YOLOX feeds it since 0.1.1.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from ...core.errors import ModelError
from ...core.result import Detection
from .base import (
    Context,
    FloatArray,
    InputDefaults,
    Output,
    allowed_classes,
    finish,
    grid_count,
    shapes_text,
)
from .yolov5 import is_anchor_free_count, objectness_candidates, row_candidates, split_head

NAME = "yolox"
READS = "[1, N, 5+nc] raw grid outputs, N = sum over strides of (H/s)*(W/s)"
DEFAULTS = InputDefaults(color="BGR", mean=0.0, scale=1.0)


def grid(w: int, h: int, strides: Sequence[int]) -> tuple[FloatArray, FloatArray]:
    """Per row: cell ``(col, row)`` and the stride, in the export's order."""
    cells, steps = [], []
    for s in strides:
        gh, gw = -(-h // s), -(-w // s)
        ys, xs = np.mgrid[0:gh, 0:gw]
        cells.append(np.stack([xs.ravel(), ys.ravel()], axis=1))
        steps.append(np.full((gh * gw, 1), s))
    return (np.concatenate(cells).astype(np.float32), np.concatenate(steps).astype(np.float32))


@dataclass(frozen=True)
class YoloxDecoder:
    outputs: tuple[int, ...]
    ctx: Context
    allowed: npt.NDArray[np.intp]
    cells: FloatArray = field(repr=False)
    strides: FloatArray = field(repr=False)

    def __call__(self, tensors: Sequence[npt.ArrayLike]) -> list[Detection]:
        t = np.asarray(tensors[0], dtype=np.float32)
        rows = t.reshape(-1, t.shape[-1])
        # The scores are final before decoding: threshold first, decode only the survivors.
        idx, scores, classes = objectness_candidates(rows, self.ctx, self.allowed)
        s = self.strides[idx]
        centre = (rows[idx, 0:2] + self.cells[idx]) * s
        half = np.exp(np.minimum(rows[idx, 2:4], 20.0)) * s / 2
        boxes = np.concatenate([centre - half, centre + half], axis=1).astype(np.float32)
        return finish(boxes, scores, classes, self.ctx)


class YoloxLayout:
    name = NAME
    reads = READS
    input_defaults = DEFAULTS

    def recognise(
        self, outputs: Sequence[Output], ctx: Context, forced: bool
    ) -> YoloxDecoder | None:
        w, h = ctx.input_size
        expected = grid_count(w, h, ctx.options.strides)
        for out in row_candidates(outputs):
            if is_anchor_free_count(out.shape[1], ctx) and (forced or not split_head(out, outputs)):
                cells, strides = grid(w, h, ctx.options.strides)
                return YoloxDecoder(
                    (out.index,), ctx, allowed_classes(ctx, out.shape[2] - 5), cells, strides
                )
        if forced:
            raise ModelError(
                f"model {ctx.model!r}: outputs {shapes_text(outputs)} do not fit layout "
                f"{NAME!r}, which reads {READS} (= {expected} at {w}x{h} with strides "
                f"{list(ctx.options.strides)}; set \"strides\" or \"input_w\"/\"input_h\" "
                "in the sidecar if they differ)"
            )
        return None


LAYOUT = YoloxLayout()
