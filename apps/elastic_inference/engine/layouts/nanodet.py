"""NanoDet (GFL head, anchor free): per stride, class scores and box-side distributions.

For each stride ``s`` (8, 16, 32; the sidecar's ``strides``) one output of scores
``[1, N, nc]`` (the sigmoid is already in the graph) and one of distributions
``[1, N, 4 * bins]``, one row per cell of the ``ceil(H/s) x ceil(W/s)`` grid, row-major. The
distribution of each side (left, top, right, bottom) is a softmax over ``bins`` (11 for
NanoDet-g, ``reg_max`` 10); the side's distance from the cell centre
``((col + 0.5) * s, (row + 0.5) * s)`` is ``sum_k p_k * k * s`` input pixels.

Recognised by shape, never by output order or name: for every stride, two outputs of that
stride's cell count whose last dimensions are the same ``nc`` and ``4 * bins`` at every
stride. When both could be either (``nc`` a multiple of 4, as COCO's 80 is), the one with
as many values as the model has labels holds the scores; without labels, 44 and 32
(NanoDet-g and NanoDet-Plus bins) mark the distributions. Input: BGR, normalised with the
ImageNet mean/std of its training (per channel).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

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
    finish,
    no_fit,
    rank3,
)

NAME = "nanodet"
READS = (
    "per stride s: scores [1, N_s, nc] + box distributions [1, N_s, 4*bins], "
    "N_s = (H/s)*(W/s)"
)
DEFAULTS = InputDefaults(
    color="BGR", mean=(103.53, 116.28, 123.675), scale=(57.375, 57.12, 58.395)
)
#: Distribution widths of the known exports (NanoDet-g: 4 x 11 bins; NanoDet-Plus: 4 x 8).
_KNOWN_DIST = (44, 32)


def cell_centres(w: int, h: int, stride: int) -> FloatArray:
    """``[N, 2]`` cell centres in input pixels, row-major, as the head's rows are ordered."""
    ys, xs = np.mgrid[0:-(-h // stride), 0:-(-w // stride)]
    xy = np.stack([xs.ravel(), ys.ravel()], axis=1).astype(np.float32)
    return ((xy + 0.5) * np.float32(stride)).astype(np.float32)


@dataclass(frozen=True)
class NanoDetDecoder:
    """``outputs`` are (scores, distributions) per stride, in ``strides`` order."""

    outputs: tuple[int, ...]
    ctx: Context
    allowed: npt.NDArray[np.intp]
    strides: tuple[int, ...]
    bins: int
    centres: tuple[FloatArray, ...] = field(repr=False)

    def __call__(self, tensors: Sequence[npt.ArrayLike]) -> list[Detection]:
        boxes, scores, classes = [], [], []
        k = np.arange(self.bins, dtype=np.float32)
        for level, (stride, centres) in enumerate(zip(self.strides, self.centres, strict=True)):
            n = centres.shape[0]
            sc = np.asarray(tensors[2 * level], dtype=np.float32).reshape(n, -1)
            cls, score = best_class(sc, self.allowed)  # each cell keeps its best allowed class
            cand = np.flatnonzero(score >= self.ctx.threshold)
            if cand.size == 0:
                continue
            dist = np.asarray(tensors[2 * level + 1], dtype=np.float32).reshape(n, 4, self.bins)
            z = dist[cand]
            p = np.exp(z - z.max(axis=2, keepdims=True))  # softmax over the bins, only here
            d = (p / p.sum(axis=2, keepdims=True)) @ k * np.float32(stride)  # [M, 4]: l t r b
            c = centres[cand]
            boxes.append(np.concatenate([c - d[:, :2], c + d[:, 2:]], axis=1))
            scores.append(score[cand])
            classes.append(cls[cand])
        if not boxes:
            return []
        return finish(np.concatenate(boxes).astype(np.float32), np.concatenate(scores),
                      np.concatenate(classes), self.ctx)


def _split(pair: list[Output], ctx: Context) -> tuple[Output, Output] | None:
    """(scores, distributions) of one stride's two outputs, or None when it cannot be told."""
    a, b = pair
    fits = [(s, d) for s, d in ((a, b), (b, a)) if d.shape[2] % 4 == 0 and d.shape[2] >= 8]
    if len(fits) == 2:  # both widths are multiples of 4: the labels, then known widths decide
        fits = [(s, d) for s, d in fits if s.shape[2] == len(ctx.labels)] or \
            [(s, d) for s, d in fits if d.shape[2] in _KNOWN_DIST and s.shape[2] not in _KNOWN_DIST]
    return fits[0] if len(fits) == 1 else None


class NanoDetLayout:
    name = NAME
    reads = READS
    input_defaults = DEFAULTS

    def recognise(
        self, outputs: Sequence[Output], ctx: Context, forced: bool
    ) -> NanoDetDecoder | None:
        w, h = ctx.input_size
        strides = ctx.options.strides
        heads = rank3(outputs)
        order: list[int] = []
        widths: set[tuple[int, int]] = set()
        for s in strides:
            n = -(-h // s) * -(-w // s)
            pair = [o for o in heads if o.shape[1] == n]
            split = _split(pair, ctx) if len(pair) == 2 else None
            if split is None:
                if forced:
                    raise no_fit(ctx, outputs, NAME, READS)
                return None
            order += [split[0].index, split[1].index]
            widths.add((split[0].shape[2], split[1].shape[2]))
        if len(widths) != 1 or len(order) != len(outputs):
            if forced:
                raise no_fit(ctx, outputs, NAME, READS)
            return None
        nc, dist = widths.pop()
        return NanoDetDecoder(
            tuple(order), ctx, allowed_classes(ctx, nc), tuple(strides), dist // 4,
            tuple(cell_centres(w, h, s) for s in strides),
        )


LAYOUT = NanoDetLayout()
