"""What every layout shares: the output shapes it is shown, its context, and the last steps.

A layout module recognises one family of detectors from the shapes of the model's outputs and
builds a decoder for it. Decoders return detections normalised to the *network input*
(0..1); the runtime then undoes a letterbox if the model was fed one. Pure numpy, no openvino.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

import numpy as np
import numpy.typing as npt

from ...core.errors import ModelError
from ...core.result import Detection
from ..postprocess import AnchorOptions, DecodeOptions, nms, to_detections

FloatArray = npt.NDArray[np.float32]
Color = Literal["RGB", "BGR"]

#: More candidates than this after the score threshold are cut (best first) before NMS, so a
#: threshold set too low costs bounded time instead of a greedy pass over 8,400 boxes.
PRE_NMS_CANDIDATES = 2000


@dataclass(frozen=True)
class Output:
    """One model output as the recognisers see it: ``-1`` marks a dynamic dimension."""

    index: int
    shape: tuple[int, ...]
    names: tuple[str, ...] = ()


@dataclass(frozen=True)
class LayoutOptions:
    """Per-family settings a user may give in the sidecar (``auto`` = decided by the layout)."""

    strides: tuple[int, ...] = (8, 16, 32)  # YOLOX grid decoding, and the v5/YOLOX count rule
    box_format: Literal["auto", "xyxy", "cxcywh"] = "auto"  # end-to-end outputs
    box_units: Literal["auto", "pixels", "normalised"] = "auto"
    score_activation: Literal["auto", "none", "sigmoid"] = "auto"


@dataclass(frozen=True)
class InputDefaults:
    """What a family's exports expect as input, used where the sidecar says nothing."""

    color: Color
    mean: float | tuple[float, ...]  # one value, or one per channel in ``color`` order
    scale: float | tuple[float, ...]


@dataclass(frozen=True)
class Context:
    """Everything a decoder needs besides the tensors; built once per detector."""

    model: str
    labels: tuple[str, ...]
    threshold: float
    input_size: tuple[int, int]  # network (w, h)
    iou_threshold: float = 0.5
    max_detections: int = 100
    label_filter: frozenset[str] | None = None
    options: LayoutOptions = field(default_factory=LayoutOptions)
    anchors: AnchorOptions | None = None  # mediapipe-ssd only
    decode: DecodeOptions | None = None
    ignore_classes: tuple[int, ...] = ()


class Decoder(Protocol):
    """Turns the tensors of ``outputs`` (indices into the model's outputs, in that order) into
    detections normalised to the network input.

    A decoder may also have ``batch(tensors, frames) -> list[list[Detection]]`` for tensors
    holding ``frames`` frames on their first axis (a batched model's request); without it the
    runtime calls the decoder frame by frame.
    """

    @property
    def outputs(self) -> tuple[int, ...]: ...

    def __call__(self, tensors: Sequence[npt.ArrayLike]) -> list[Detection]: ...


class Layout(Protocol):
    """A detector family. ``recognise`` returns ``None`` when the shapes are not its own; with
    ``forced`` (the sidecar named it) it relaxes ambiguity rules and raises instead, saying
    what it expected."""

    name: str
    reads: str  # the shapes it reads, for error messages and ``ei models``
    input_defaults: InputDefaults

    def recognise(
        self, outputs: Sequence[Output], ctx: Context, forced: bool
    ) -> Decoder | None: ...


def grid_count(w: int, h: int, strides: Sequence[int]) -> int:
    """Cells of an anchor-free head over strides (YOLOX, YOLOv8): ``sum(ceil(h/s)*ceil(w/s))``."""
    return sum(-(-h // s) * -(-w // s) for s in strides)


def rank3(outputs: Sequence[Output]) -> list[Output]:
    """The outputs shaped ``[1, A, B]`` (batch 1 or dynamic): where every YOLO head ends."""
    return [o for o in outputs if len(o.shape) == 3 and o.shape[0] in (1, -1)]


def allowed_classes(ctx: Context, num_classes: int) -> npt.NDArray[np.intp]:
    """Class ids to consider: all of them, or those whose label passes the label filter.

    Restricting before the arg-max (as the SSD does) keeps a ``people`` worker's person box
    even when another class scored higher on it.
    """
    if ctx.label_filter is None:
        ids = [i for i in range(num_classes) if i not in ctx.ignore_classes]
    else:
        wanted = {x.casefold() for x in ctx.label_filter}
        ids = [i for i, name in enumerate(ctx.labels[:num_classes]) if name.casefold() in wanted]
    if not ids:
        raise ModelError(
            f"model {ctx.model!r}: no class of its {num_classes} passes the label filter "
            f"{sorted(ctx.label_filter or ())}"
        )
    return np.asarray(ids, dtype=np.intp)


def label_of(ctx: Context, class_id: int) -> str:
    """The class' label, or its decimal id when the model came without labels."""
    return ctx.labels[class_id] if 0 <= class_id < len(ctx.labels) else str(class_id)


def cxcywh_to_xyxy(b: FloatArray) -> FloatArray:
    half = b[:, 2:4] / 2
    return np.concatenate([b[:, 0:2] - half, b[:, 0:2] + half], axis=1).astype(np.float32)


def finish(
    boxes: FloatArray,
    scores: FloatArray,
    classes: npt.NDArray[np.intp],
    ctx: Context,
    pixels: bool = True,
    suppress: bool = True,
) -> list[Detection]:
    """Candidates (``x1, y1, x2, y2`` in input pixels, or normalised with ``pixels=False``) that
    passed the threshold -> detections: class-wise NMS (``postprocess.nms``, which wants
    normalised boxes), best first, clipped to the input."""
    if boxes.shape[0] == 0:
        return []
    if pixels:
        w, h = ctx.input_size
        boxes = (boxes / np.asarray([w, h, w, h], dtype=np.float32)).astype(np.float32)
    if boxes.shape[0] > PRE_NMS_CANDIDATES:
        top = np.argsort(-scores, kind="stable")[:PRE_NMS_CANDIDATES]
        boxes, scores, classes = boxes[top], scores[top], classes[top]
    if suppress:
        keep = nms(boxes, scores, classes, ctx.iou_threshold, ctx.max_detections)
    else:
        keep = np.argsort(-scores, kind="stable")[: ctx.max_detections]
    return to_detections(boxes[keep], scores[keep],
                         [label_of(ctx, int(c)) for c in classes[keep].tolist()])


def shapes_text(outputs: Collection[Output]) -> str:
    """``[1, 84, 8400], [1, 1, 100, 7]`` (``?`` for a dynamic dimension)."""
    return ", ".join(
        "[" + ", ".join("?" if d < 0 else str(d) for d in o.shape) + "]" for o in outputs
    )


def no_fit(ctx: Context, outputs: Collection[Output], name: str, reads: str) -> ModelError:
    """The error of a layout forced on outputs that are not its own."""
    return ModelError(
        f"model {ctx.model!r}: outputs {shapes_text(outputs)} do not fit layout {name!r}, "
        f"which reads {reads}"
    )
