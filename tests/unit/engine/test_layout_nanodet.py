"""NanoDet decoding and recognition on hand-built tensors whose boxes are known by construction.

The network input is 64x64 (grids 8x8, 4x4, 2x2 for strides 8, 16, 32) unless a test says
otherwise; 3 classes; 11 bins per side (NanoDet-g).
"""

from __future__ import annotations

import numpy as np
import pytest

from elastic_inference.core.errors import ModelError
from elastic_inference.core.result import Detection, box_iou
from elastic_inference.engine.layouts.base import Context, Output
from elastic_inference.engine.layouts.nanodet import NanoDetLayout
from elastic_inference.engine.layouts.registry import select
from elastic_inference.engine.models import BUILTIN_MODELS, COCO80_LABELS

LABELS = ("person", "car", "truck")
BINS = 11


def ctx(threshold: float = 0.4, label_filter: frozenset[str] | None = None,
        size: tuple[int, int] = (64, 64), labels: tuple[str, ...] = LABELS) -> Context:
    return Context(model="m", labels=labels, threshold=threshold, input_size=size,
                   label_filter=label_filter)


def empty(size: tuple[int, int] = (64, 64), nc: int = len(LABELS)) -> list[np.ndarray]:
    """Scores 0 and flat distributions for every stride, as (scores, distributions) pairs."""
    w, h = size
    outs: list[np.ndarray] = []
    for s in (8, 16, 32):
        n = -(-w // s) * -(-h // s)
        outs += [np.zeros((1, n, nc), np.float32), np.zeros((1, n, 4 * BINS), np.float32)]
    return outs


def outputs_of(tensors: list[np.ndarray]) -> list[Output]:
    return [Output(i, t.shape) for i, t in enumerate(tensors)]


def put(outs: list[np.ndarray], level: int, cell: int, cls: int, score: float,
        sides: tuple[float, float, float, float]) -> None:
    """One cell: ``score`` for ``cls`` and a distribution peaked at ``sides`` bins (l, t, r, b).

    A whole bin gets a logit of 60 (softmax ~1 on it); a half bin k + 0.5 puts equal logits on
    k and k + 1, whose expectation is k + 0.5.
    """
    outs[2 * level][0, cell, cls] = score
    dist = np.zeros((4, BINS), np.float32)
    for side, value in enumerate(sides):
        dist[side, int(value)] = 60.0
        if value != int(value):
            dist[side, int(value) + 1] = 60.0
    outs[2 * level + 1][0, cell] = dist.ravel()


def decode(outs: list[np.ndarray], context: Context | None = None) -> list[Detection]:
    layout, dec = select(outputs_of(outs), context or ctx())
    assert layout.name == "nanodet"
    return dec([outs[i] for i in dec.outputs])


def test_one_box_from_a_peaked_distribution() -> None:
    outs = empty()
    # stride 8, cell (x=2, y=3) -> row 3*8+2 = 26, centre (20, 28); sides 2,1,3,4 bins of 8 px
    put(outs, 0, 26, 0, 0.9, (2, 1, 3, 4))
    (d,) = decode(outs)
    assert d.label == "person" and d.score == pytest.approx(0.9)
    assert d.box == pytest.approx((4 / 64, 20 / 64, 44 / 64, 60 / 64), abs=1e-5)


def test_expectation_over_bins_and_coarse_strides() -> None:
    outs = empty()
    # stride 16, cell (x=1, y=2) -> row 9, centre (24, 40); half bins
    put(outs, 1, 9, 1, 0.7, (1.5, 0.5, 0.5, 1.5))
    # stride 32, cell (x=1, y=0) -> row 1, centre (48, 16)
    put(outs, 2, 1, 2, 0.6, (1, 0.5, 0.5, 0.5))
    got = {d.label: d for d in decode(outs)}
    assert got["car"].box == pytest.approx((0.0, 32 / 64, 32 / 64, 1.0), abs=1e-5)
    assert got["truck"].box == pytest.approx((16 / 64, 0.0, 1.0, 32 / 64), abs=1e-5)


def test_non_square_input_normalises_each_axis() -> None:
    outs = empty((64, 32))
    # stride 8 on an 8x4 grid: cell (x=4, y=1) -> row 12, centre (36, 12)
    put(outs, 0, 12, 0, 0.8, (1, 1, 1, 2))
    (d,) = decode(outs, ctx(size=(64, 32)))
    assert d.box == pytest.approx((28 / 64, 4 / 32, 44 / 64, 28 / 32), abs=1e-5)


def test_threshold_best_allowed_class_and_filter() -> None:
    outs = empty()
    put(outs, 0, 26, 2, 0.8, (1, 1, 1, 1))  # truck 0.8 ...
    outs[0][0, 26, 0] = 0.3  # ... and person 0.3 in the same cell
    assert [d.label for d in decode(outs)] == ["truck"]
    assert decode(outs, ctx(threshold=0.85)) == []
    people = decode(outs, ctx(threshold=0.25, label_filter=frozenset({"person"})))
    assert [(d.label, round(d.score, 3)) for d in people] == [("person", 0.3)]
    with pytest.raises(ModelError, match="label filter"):
        decode(outs, ctx(label_filter=frozenset({"dog"})))


def test_class_wise_nms() -> None:
    outs = empty()
    put(outs, 0, 26, 0, 0.9, (2, 2, 2, 2))
    put(outs, 0, 27, 0, 0.8, (2, 2, 2, 2))  # same size, 8 px right: IoU 0.6, suppressed
    put(outs, 0, 28, 1, 0.7, (2, 2, 2, 2))  # another class over it: kept
    got = decode(outs)
    assert [(d.label, round(d.score, 2)) for d in got] == [("person", 0.9), ("car", 0.7)]
    assert box_iou(got[0].box, got[1].box) > 0.3


def test_outputs_are_told_apart_by_shape_not_order() -> None:
    outs = empty()
    put(outs, 0, 26, 0, 0.9, (2, 1, 3, 4))
    shuffled = [outs[i] for i in (5, 2, 0, 3, 1, 4)]
    _, dec = select(outputs_of(shuffled), ctx())
    assert dec.outputs == (2, 4, 1, 3, 5, 0)
    assert dec([shuffled[i] for i in dec.outputs]) == decode(outs)


def test_scores_and_distributions_both_multiples_of_four() -> None:
    # COCO: 80 scores and 44 values, both divisible by 4; the labels tell them apart, and
    # without labels the known distribution width does.
    outs = empty((416, 416), nc=80)
    for labels in (COCO80_LABELS, ()):
        layout, dec = select(outputs_of(outs), ctx(size=(416, 416), labels=labels))
        assert layout.name == "nanodet" and dec.outputs == (0, 1, 2, 3, 4, 5)


def test_other_shapes_are_not_nanodet() -> None:
    outs = empty()
    # A stride's distributions missing: not NanoDet (another family may take a lone output).
    assert NanoDetLayout().recognise(outputs_of(outs[:5]), ctx(), False) is None
    with pytest.raises(ModelError, match="do not fit layout 'nanodet'"):
        select(outputs_of(outs[:4]), ctx(), "nanodet")
    wrong = [outs[0], outs[1], outs[2], np.zeros((1, 16, 32), np.float32), outs[4], outs[5]]
    with pytest.raises(ModelError, match="do not fit layout 'nanodet'"):
        select(outputs_of(wrong), ctx(), "nanodet")  # bins differ between strides


def test_builtin_spec_decodes_the_converted_models_outputs() -> None:
    spec = BUILTIN_MODELS["nanodet-g-416"]
    assert spec.labels == COCO80_LABELS and len(COCO80_LABELS) == 80
    shapes = [(1, 2704, 80), (1, 676, 80), (1, 169, 80), (1, 2704, 44), (1, 676, 44),
              (1, 169, 44)]  # the converted IR's output order
    outputs = [Output(i, s) for i, s in enumerate(shapes)]
    layout, dec = select(outputs, spec.layout_context((416, 416), frozenset({"car", "truck"})),
                         spec.postprocess)
    assert layout.name == "nanodet" and dec.outputs == (0, 3, 1, 4, 2, 5)
    assert layout.input_defaults.color == spec.color == "BGR"
    assert layout.input_defaults.mean == spec.mean and layout.input_defaults.scale == spec.scale
