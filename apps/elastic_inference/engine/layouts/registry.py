"""The known layouts, and the rule that picks one from a model's output shapes.

Recognisers are tried in :data:`LAYOUTS` order; the first that claims the outputs wins.
The order encodes the ambiguity rules (doc/models.md, "How a layout is recognised"):
``DetectionOutput`` first (unmistakable); MediaPipe SSD only with anchors; end-to-end
``[1, K, 6]`` unless ``K`` is a YOLO grid count; NanoDet when the outputs pair up per stride
(each stride's cell count, twice); YOLOX when ``N`` is the anchor-free grid count; YOLOv8
when channels come first; YOLOv5 for the remaining ``[1, N, 5 + nc]``.
"""

from __future__ import annotations

from collections.abc import Sequence

from ...core.errors import ModelError
from . import end2end, mediapipe_ssd, nanodet, omz_ssd, yolov5, yolov8, yolox
from .base import Context, Decoder, Layout, Output, no_fit, shapes_text

LAYOUTS: tuple[Layout, ...] = (
    omz_ssd.LAYOUT,
    mediapipe_ssd.LAYOUT,
    end2end.LAYOUT,
    nanodet.LAYOUT,
    yolox.LAYOUT,
    yolov8.LAYOUT,
    yolov5.LAYOUT,
)
BY_NAME: dict[str, Layout] = {layout.name: layout for layout in LAYOUTS}
#: What a sidecar's ``layout`` may say: a name above, or ``auto`` (recognise; the default).
LAYOUT_NAMES: tuple[str, ...] = ("auto", *BY_NAME)

#: Sidecar keys that make an unrecognised model readable, for the error message.
_HINT = (
    '"layout" (one of {names}), "labels" (its class names: their count tells a YOLOv8 '
    'head transposed to [1, N, 4+nc] from YOLOv5), "input_w"/"input_h" (the size it was '
    'exported at), "strides" (YOLOX)'
)


def select(outputs: Sequence[Output], ctx: Context, forced: str = "auto") -> tuple[Layout, Decoder]:
    """The layout for these outputs (or the one the sidecar forces) and its decoder.

    Raises :class:`ModelError` naming the shapes found and the sidecar keys that would help.
    """
    if forced != "auto":
        layout = BY_NAME.get(forced)
        if layout is None:
            raise ModelError(
                f"model {ctx.model!r}: unknown layout {forced!r} (known: {', '.join(LAYOUT_NAMES)})"
            )
        decoder = layout.recognise(outputs, ctx, True)
        if decoder is None:  # recognisers raise when forced; this guards a new one that does not
            raise no_fit(ctx, outputs, forced, layout.reads)
        return layout, decoder
    for layout in LAYOUTS:
        decoder = layout.recognise(outputs, ctx, False)
        if decoder is not None:
            return layout, decoder
    known = "; ".join(f"{lay.name} {lay.reads}" for lay in LAYOUTS)
    raise ModelError(
        f"model {ctx.model!r}: its outputs {shapes_text(outputs)} (input "
        f"{ctx.input_size[0]}x{ctx.input_size[1]}) match no known layout ({known}). Describe "
        f"it in its JSON sidecar: {_HINT.format(names=', '.join(BY_NAME))}; see doc/models.md"
    )
