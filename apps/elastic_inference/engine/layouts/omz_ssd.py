"""Open Model Zoo SSDs: a graph ending in ``DetectionOutput``, ``[1, 1, N, 7]`` rows of
``image_id, label, conf, x1, y1, x2, y2`` (normalised, NMS done). Input BGR 0..255."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy.typing as npt

from ...core.errors import ModelError
from ...core.result import Detection
from ..postprocess import DetectionOutputPostprocessor
from .base import Context, InputDefaults, Output, shapes_text

NAME = "omz-ssd"
READS = "[1, 1, N, 7] DetectionOutput rows (image_id, label, conf, x1, y1, x2, y2)"
DEFAULTS = InputDefaults(color="BGR", mean=0.0, scale=1.0)


@dataclass(frozen=True)
class OmzDecoder:
    outputs: tuple[int, ...]
    post: DetectionOutputPostprocessor

    def __call__(self, tensors: Sequence[npt.ArrayLike]) -> list[Detection]:
        return self.post(tensors[0])


class OmzSsdLayout:
    name = NAME
    reads = READS
    input_defaults = DEFAULTS

    def recognise(self, outputs: Sequence[Output], ctx: Context, forced: bool) -> OmzDecoder | None:
        for out in outputs:
            if len(out.shape) == 4 and out.shape[-1] == 7:
                return OmzDecoder(
                    (out.index,),
                    DetectionOutputPostprocessor(ctx.labels, ctx.threshold, ctx.label_filter),
                )
        if forced:
            raise ModelError(
                f"model {ctx.model!r} is declared {NAME} but has no [1,1,N,7] DetectionOutput "
                f"output (outputs: {shapes_text(outputs)})"
            )
        return None


LAYOUT = OmzSsdLayout()
