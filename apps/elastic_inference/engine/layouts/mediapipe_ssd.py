"""MediaPipe raw SSD heads (the built-ins): box regressions ``[1, N, >=4]`` and class logits
``[1, N, nc]`` per anchor. Needs the anchor and decode options (built-in, or the sidecar's
``anchors``/``decode``): without them the shapes say nothing, so it is never guessed."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy.typing as npt

from ...core.errors import ModelError
from ...core.result import Detection
from ..postprocess import SsdPostprocessor, generate_anchors
from .base import Context, InputDefaults, Output, shapes_text

NAME = "mediapipe-ssd"
READS = "boxes [1, N, >=4] + class logits [1, N, nc] over N SSD anchors (needs anchors)"
DEFAULTS = InputDefaults(color="RGB", mean=127.5, scale=127.5)


@dataclass(frozen=True)
class SsdDecoder:
    outputs: tuple[int, ...]
    post: SsdPostprocessor

    def __call__(self, tensors: Sequence[npt.ArrayLike]) -> list[Detection]:
        return self.post(tensors[0], tensors[1])

    def batch(self, tensors: Sequence[npt.ArrayLike], frames: int) -> list[list[Detection]]:
        """Each frame's detections from outputs holding ``frames`` frames (see ``base``)."""
        return self.post.batch(tensors[0], tensors[1], frames)


def _pick(outputs: Sequence[Output], n_anchors: int, n_classes: int) -> tuple[int, int] | None:
    """(boxes, scores) output indices; names decide when both have ``nc`` values."""
    cand = [o for o in outputs if len(o.shape) == 3 and o.shape[1] == n_anchors]
    scores = [o for o in cand if o.shape[2] == n_classes]
    if len(cand) != 2 or not scores:
        return None
    s_out = scores[0]
    if len(scores) == 2:
        s_out = next(
            (o for o in cand if any("class" in n.lower() or "score" in n.lower() for n in o.names)),
            cand[1],
        )
    b_out = next(o for o in cand if o is not s_out)
    return b_out.index, s_out.index


class MediapipeSsdLayout:
    name = NAME
    reads = READS
    input_defaults = DEFAULTS

    def recognise(
        self, outputs: Sequence[Output], ctx: Context, forced: bool
    ) -> SsdDecoder | None:
        if ctx.anchors is None or ctx.decode is None:
            if forced:
                raise ModelError(f"model {ctx.model!r}: {NAME} needs anchors and decode options")
            return None
        anchors = generate_anchors(ctx.anchors)
        picked = _pick(outputs, anchors.shape[0], len(ctx.labels))
        if picked is None:
            if forced:
                raise ModelError(
                    f"model {ctx.model!r} outputs {shapes_text(outputs)} do not match "
                    f"{anchors.shape[0]} anchors and {len(ctx.labels)} classes of its {NAME} "
                    "post-processor"
                )
            return None
        post = SsdPostprocessor(
            anchors, ctx.decode, ctx.labels, ctx.threshold, ctx.iou_threshold,
            ignore_classes=ctx.ignore_classes, label_filter=ctx.label_filter,
            max_detections=ctx.max_detections,
        )
        return SsdDecoder(picked, post)


LAYOUT = MediapipeSsdLayout()
