"""Layout decoders and the recognition rules, on hand-built tensors whose boxes are known.

The network input is 64x64 throughout: the anchor-free grid over strides 8/16/32 has
8*8 + 4*4 + 2*2 = 84 cells, so a YOLOX head has 84 rows and a YOLOv5 head 3*84 = 252.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from elastic_inference.core.errors import ModelError
from elastic_inference.core.result import box_iou
from elastic_inference.engine.layouts.base import (
    Context,
    LayoutOptions,
    Output,
    grid_count,
)
from elastic_inference.engine.layouts.registry import LAYOUT_NAMES, select
from elastic_inference.engine.postprocess import best_class
from elastic_inference.engine.preprocess import letterbox, letterbox_geometry, unletterbox

SIZE = (64, 64)
G = 84


def ctx(labels: tuple[str, ...] = ("cat", "dog"), **kw: object) -> Context:
    return Context(model="m", labels=labels, threshold=0.5, input_size=SIZE, **kw)  # type: ignore[arg-type]


def norm(box: tuple[float, float, float, float]) -> tuple[float, ...]:
    return tuple(v / 64 for v in box)


def v5_head(nc: int = 2) -> np.ndarray:
    """Rows cx, cy, w, h (pixels), obj, cls...; three boxes of interest, the rest empty."""
    t = np.zeros((1, 3 * G, 5 + nc), np.float32)
    t[0, 10, :7] = [32, 16, 20, 10, 0.9, 0.1, 0.8]   # dog 0.72 at (22, 11, 42, 21)
    t[0, 11, :7] = [33, 16, 20, 10, 0.9, 0.1, 0.7]   # same dog, lower: suppressed by NMS
    t[0, 12, :7] = [33, 16, 20, 10, 0.9, 0.6, 0.1]   # a cat on it: class-wise NMS keeps it
    t[0, 13, :7] = [10, 50, 8, 8, 0.4, 0.0, 1.0]     # objectness under the threshold
    return t


def test_grid_count_and_layout_names() -> None:
    assert grid_count(64, 64, (8, 16, 32)) == G
    assert grid_count(640, 640, (8, 16, 32)) == 8400
    assert set(LAYOUT_NAMES) == {
        "auto", "omz-ssd", "mediapipe-ssd", "end2end", "nanodet", "yolox", "yolov8", "yolov5"}


def test_yolov5_objectness_times_class_and_classwise_nms() -> None:
    layout, dec = select([Output(0, (1, 3 * G, 7))], ctx())
    assert layout.name == "yolov5" and layout.input_defaults.scale == 255.0
    got = dec([v5_head()])
    assert [(d.label, round(d.score, 3)) for d in got] == [("dog", 0.72), ("cat", 0.54)]
    np.testing.assert_allclose(got[0].box, norm((22, 11, 42, 21)), atol=1e-6)


def test_label_filter_restricts_classes_before_the_argmax() -> None:
    _, dec = select([Output(0, (1, 3 * G, 7))], ctx(label_filter=frozenset({"CAT"})))
    got = dec([v5_head()])
    # Row 10's best class is dog, but among the allowed ones it is a cat at 0.9 * 0.1.
    assert {d.label for d in got} == {"cat"} and max(d.score for d in got) == pytest.approx(0.54)


def test_yolox_raw_grid_decoding() -> None:
    t = np.zeros((1, G, 7), np.float32)
    # Stride 16 level starts after the 64 stride-8 cells; cell (col 2, row 1) is row 64+4+2.
    t[0, 70, :7] = [0.5, 0.25, math.log(2.0), 0.0, 0.95, 0.9, 0.05]
    layout, dec = select([Output(0, (1, G, 7))], ctx())
    assert layout.name == "yolox" and layout.input_defaults.color == "BGR"
    (d,) = dec([t])
    # cx = (0.5 + 2) * 16 = 40, cy = (0.25 + 1) * 16 = 20, w = 2 * 16, h = 16.
    assert d.label == "cat" and d.score == pytest.approx(0.855)
    np.testing.assert_allclose(d.box, norm((24, 12, 56, 28)), atol=1e-6)


def test_yolox_with_other_strides_and_forced_mismatch() -> None:
    opts = LayoutOptions(strides=(16, 32))
    layout, _ = select([Output(0, (1, 20, 7))], ctx(options=opts))
    assert layout.name == "yolox"  # 4*4 + 2*2 rows
    with pytest.raises(ModelError, match=r"do not fit layout 'yolox'.*= 84 at 64x64.*strides"):
        select([Output(0, (1, 3 * G, 7))], ctx(), "yolox")


def test_yolov8_channels_first_and_transposed() -> None:
    t = np.zeros((1, 6, G), np.float32)
    t[0, :, 5] = [32, 32, 16, 32, 0.2, 0.7]  # dog at (24, 16, 40, 48)
    t[0, :, 6] = [8, 8, 4, 4, 0.3, 0.1]      # under the threshold
    layout, dec = select([Output(0, (1, 6, G))], ctx())
    assert layout.name == "yolov8"
    (d,) = dec([t])
    assert d.label == "dog" and d.score == pytest.approx(0.7)
    np.testing.assert_allclose(d.box, norm((24, 16, 40, 48)), atol=1e-6)
    # Transposed [1, N, 4 + nc]: YOLOv8 when the labels' count says so, YOLOv5 otherwise.
    layout, dec = select([Output(0, (1, 200, 6))], ctx())
    assert layout.name == "end2end"  # 6 columns and not a grid count: end-to-end rows
    layout, dec = select([Output(0, (1, 200, 7))], ctx(("a", "b", "c")))
    assert layout.name == "yolov8"
    tt = np.zeros((1, 200, 7), np.float32)
    tt[0, 3] = [32, 32, 16, 32, 0.0, 0.0, 0.9]
    assert [(d.label, round(d.score, 2)) for d in dec([tt])] == [("c", 0.9)]
    assert select([Output(0, (1, 200, 7))], ctx())[0].name == "yolov5"
    assert select([Output(0, (1, 200, 7))], ctx(), "yolov8")[0].name == "yolov8"


def test_single_class_yolo_heads_are_not_end_to_end() -> None:
    assert select([Output(0, (1, G, 6))], ctx(("x",)))[0].name == "yolox"
    assert select([Output(0, (1, 3 * G, 6))], ctx(("x",)))[0].name == "yolov5"
    assert select([Output(0, (1, 300, 6))], ctx(("x",)))[0].name == "end2end"
    assert select([Output(0, (1, G, 6))], ctx(("x",)), "end2end")[0].name == "end2end"


def test_end2end_rows_in_pixels_and_normalised_without_nms() -> None:
    rows = np.zeros((1, 300, 6), np.float32)
    rows[0, 0] = [8, 8, 24, 40, 0.9, 1]
    rows[0, 1] = [9, 8, 24, 40, 0.8, 1]  # overlaps the first: kept, no NMS here
    rows[0, 2] = [0, 0, 10, 10, 0.3, 0]
    _, dec = select([Output(0, (1, 300, 6))], ctx())
    got = dec([rows])
    assert [d.label for d in got] == ["dog", "dog"]
    np.testing.assert_allclose(got[0].box, norm((8, 8, 24, 40)), atol=1e-6)
    normalised = rows.copy()
    normalised[0, :, :4] /= 64
    np.testing.assert_allclose(dec([normalised])[0].box, norm((8, 8, 24, 40)), atol=1e-6)
    # A class id beyond the labels is reported by its number.
    rows[0, 0, 5] = 7
    assert dec([rows])[0].label == "7"


def test_end2end_boxes_and_logits_pair() -> None:
    boxes = np.zeros((1, 100, 4), np.float32)
    logits = np.full((1, 100, 3), -8.0, np.float32)
    boxes[0, 4] = [0.5, 0.25, 0.5, 0.25]  # cx, cy, w, h normalised
    logits[0, 4, 2] = 2.0                 # sigmoid 0.881
    outputs = [Output(0, (1, 100, 3), ("pred_logits",)), Output(1, (1, 100, 4), ("pred_boxes",))]
    layout, dec = select(outputs, ctx(("a", "b", "c")))
    assert layout.name == "end2end" and dec.outputs == (1, 0)
    (d,) = dec([boxes, logits])
    assert d.label == "c" and d.score == pytest.approx(1 / (1 + math.exp(-2)), abs=1e-5)
    np.testing.assert_allclose(d.box, (0.25, 0.125, 0.75, 0.375), atol=1e-6)
    # Probabilities (all within 0..1) are taken as they are; xyxy when the sidecar says so.
    _, dec = select(outputs, ctx(("a", "b", "c"), options=LayoutOptions(box_format="xyxy")))
    probs = np.zeros((1, 100, 3), np.float32)
    probs[0, 4, 0] = 0.6
    boxes[0, 4] = [0.1, 0.2, 0.5, 0.6]
    (d,) = dec([boxes, probs])
    assert d.label == "a" and d.score == pytest.approx(0.6)
    np.testing.assert_allclose(d.box, (0.1, 0.2, 0.5, 0.6), atol=1e-6)


def test_omz_detection_output_is_recognised() -> None:
    rows = np.zeros((1, 1, 3, 7), np.float32)
    rows[0, 0, 0] = [0, 1, 0.8, 0.1, 0.2, 0.3, 0.4]
    rows[0, 0, 1] = [-1, 0, 0, 0, 0, 0, 0]
    layout, dec = select([Output(0, (1, 1, 3, 7))], ctx(("bg", "person")))
    assert layout.name == "omz-ssd" and layout.input_defaults.color == "BGR"
    (d,) = dec([rows])
    assert d.label == "person" and d.box == pytest.approx((0.1, 0.2, 0.3, 0.4))


def test_unknown_shapes_name_the_shapes_and_the_sidecar_keys() -> None:
    with pytest.raises(ModelError) as err:
        select([Output(0, (1, 1000)), Output(1, (1, -1, 3, 3))], ctx())
    text = str(err.value)
    assert "[1, 1000], [1, ?, 3, 3]" in text and "match no known layout" in text
    for key in ('"layout"', '"labels"', '"input_w"/"input_h"', '"strides"', "yolov8"):
        assert key in text, key
    with pytest.raises(ModelError, match=r"unknown layout 'yolo'"):
        select([Output(0, (1, 1000))], ctx(), "yolo")
    with pytest.raises(ModelError, match=r"\[1, 1000\] do not fit layout 'yolov5'"):
        select([Output(0, (1, 1000))], ctx(), "yolov5")


def test_letterbox_places_the_frame_and_boxes_map_back() -> None:
    assert letterbox_geometry(128, 64, 64, 64) == (0, 16, 64, 32)
    assert letterbox_geometry(60, 120, 64, 64) == (16, 0, 32, 64)
    frame = np.full((64, 128, 3), 200, np.uint8)
    boxed = letterbox(frame, 64, 64)
    assert boxed.shape == (64, 64, 3)
    assert (boxed[:16] == 114).all() and (boxed[48:] == 114).all() and (boxed[16:48] == 200).all()
    # A box over the middle half of the input covers the frame's full height.
    assert unletterbox((0.25, 0.25, 0.75, 0.75), 128, 64, 64, 64) == pytest.approx(
        (0.25, 0.0, 0.75, 1.0))
    assert unletterbox((0.1, 0.0, 0.9, 0.2), 128, 64, 64, 64) is None  # all in the padding
    ref = (0.2, 0.3, 0.6, 0.9)
    x, y, nw, nh = letterbox_geometry(640, 360, 64, 64)
    inp = ((ref[0] * nw + x) / 64, (ref[1] * nh + y) / 64, (ref[2] * nw + x) / 64,
           (ref[3] * nh + y) / 64)
    back = unletterbox(inp, 640, 360, 64, 64)
    assert back is not None and box_iou(back, ref) > 0.999


def test_split_ssd_heads_are_not_taken_for_a_yolo_head() -> None:
    # BlazeFace without its sidecar: [1, 896, 16] boxes + [1, 896, 1] scores, one N.
    with pytest.raises(ModelError, match="match no known layout"):
        select([Output(0, (1, 896, 16)), Output(1, (1, 896, 1))], ctx(("face",)))
    # With one output less the same [1, 896, 16] would be a YOLOv5 head.
    assert select([Output(0, (1, 896, 16))], ctx())[0].name == "yolov5"


def test_end2end_rows_with_logits_are_judged_on_the_whole_tensor() -> None:
    rows = np.zeros((1, 100, 6), np.float32)
    rows[:, :, 4] = -9.0                   # background queries: logits well under 0
    rows[0, 3] = [0.1, 0.1, 0.3, 0.5, 0.4, 0]  # sigmoid(0.4) = 0.599, inside 0..1 as a logit
    _, dec = select([Output(0, (1, 100, 6))], ctx())
    (d,) = dec([rows])
    assert d.label == "cat" and d.score == pytest.approx(1 / (1 + math.exp(-0.4)), abs=1e-5)
    np.testing.assert_allclose(d.box, (0.1, 0.1, 0.3, 0.5), atol=1e-6)


@pytest.mark.parametrize("allowed", [[0, 1, 2, 3], [2], [1, 3], [0, 2, 3]])
def test_best_class_is_the_best_allowed_one_whatever_the_subset(allowed: list[int]) -> None:
    rng = np.random.default_rng(7)
    scores = rng.random((50, 4), dtype=np.float32)
    ids, best = best_class(scores, np.asarray(allowed, dtype=np.intp))
    for row, (cls, score) in enumerate(zip(ids.tolist(), best.tolist(), strict=True)):
        want = max(allowed, key=lambda c: scores[row, c])
        assert cls == want and score == pytest.approx(float(scores[row, want]))
