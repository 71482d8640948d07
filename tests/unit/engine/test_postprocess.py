"""Anchors, box decoding, NMS and DetectionOutput parsing, checked against MediaPipe's maths."""

from __future__ import annotations

import math

import numpy as np
import pytest

from elastic_inference.core.errors import ModelError
from elastic_inference.core.result import Detection
from elastic_inference.engine.models import BUILTIN_MODELS, OIDV4_LABELS
from elastic_inference.engine.postprocess import (
    AnchorOptions,
    DecodeOptions,
    SsdPostprocessor,
    decode_boxes,
    generate_anchors,
    nms,
    parse_detection_output,
    sigmoid,
)


def anchors_of(name: str) -> np.ndarray:
    opts = BUILTIN_MODELS[name].anchors
    assert opts is not None
    return generate_anchors(opts)


@pytest.mark.parametrize(
    ("name", "count", "first", "last"),
    [
        # SSD: first anchor is the reduced lowest layer's 0.1 box on a 19x19 grid; last is the
        # interpolated sqrt(0.95 * 1.0) box of the 1x1 layer.
        (
            "ssd-mobilenetv2-oidv4",
            1917,
            (0.5 / 19, 0.5 / 19, 0.1, 0.1),
            (0.5, 0.5, 0.95**0.5, 0.95**0.5),
        ),
        ("blazeface", 896, (0.5 / 16, 0.5 / 16, 1.0, 1.0), (7.5 / 8, 7.5 / 8, 1.0, 1.0)),
        ("blazeface-full", 2304, (0.5 / 48, 0.5 / 48, 1.0, 1.0), (47.5 / 48, 47.5 / 48, 1.0, 1.0)),
        ("blazepose-detector", 2254, (0.5 / 28, 0.5 / 28, 1.0, 1.0), (6.5 / 7, 6.5 / 7, 1.0, 1.0)),
    ],
)
def test_anchor_counts_and_ends(
    name: str,
    count: int,
    first: tuple[float, float, float, float],
    last: tuple[float, float, float, float],
) -> None:
    anchors = anchors_of(name)
    assert anchors.shape == (count, 4)
    assert anchors.dtype == np.float32
    np.testing.assert_allclose(anchors[0], first, rtol=1e-5)
    np.testing.assert_allclose(anchors[-1], last, rtol=1e-5)


def test_ssd_anchor_layout_matches_mediapipe() -> None:
    anchors = anchors_of("ssd-mobilenetv2-oidv4")
    # Lowest layer: 3 anchors per cell (1, 2, 0.5), cells row-major, 19x19 = 1083 anchors.
    np.testing.assert_allclose(anchors[1, 2:], (0.2 * math.sqrt(2), 0.2 / math.sqrt(2)), rtol=1e-5)
    np.testing.assert_allclose(anchors[3, :2], (1.5 / 19, 0.5 / 19), rtol=1e-5)
    # Second layer (10x10) starts at 1083 with 6 anchors per cell; scale 0.35.
    np.testing.assert_allclose(anchors[1083], (0.05, 0.05, 0.35, 0.35), rtol=1e-5)
    interp = math.sqrt(0.35 * 0.5)
    np.testing.assert_allclose(anchors[1083 + 5, 2:], (interp, interp), rtol=1e-5)


def test_anchor_options_must_agree() -> None:
    with pytest.raises(ModelError):
        generate_anchors(AnchorOptions(2, 0.1, 0.9, 64, 64, strides=(8,)))


def test_decode_ssd_yxhw_to_known_box() -> None:
    anchors = np.array([[0.5, 0.4, 0.2, 0.3]], dtype=np.float32)  # xc, yc, w, h
    xc, yc, w, h = 0.55, 0.35, 0.3, 0.15
    raw = [
        (yc - 0.4) / 0.3 * 10,
        (xc - 0.5) / 0.2 * 10,
        math.log(h / 0.3) * 5,
        math.log(w / 0.2) * 5,
    ]
    opts = DecodeOptions("yxhw", 10, 10, 5, 5, exp_size=True)
    box = decode_boxes(np.array([raw]), anchors, opts)[0]
    np.testing.assert_allclose(box, (0.4, 0.275, 0.7, 0.425), atol=1e-6)


def test_decode_blazeface_xywh_to_known_box() -> None:
    anchors = np.array([[0.25, 0.75, 1.0, 1.0]], dtype=np.float32)
    raw = np.zeros((1, 16), dtype=np.float32)
    raw[0, :4] = (0.05 * 128, -0.1 * 128, 0.2 * 128, 0.1 * 128)  # dx, dy, w, h
    box = decode_boxes(raw, anchors, DecodeOptions("xywh", 128, 128, 128, 128))[0]
    np.testing.assert_allclose(box, (0.2, 0.6, 0.4, 0.7), atol=1e-6)


def test_decode_keypoint_box() -> None:
    anchors = np.array([[0.5, 0.5, 1.0, 1.0]], dtype=np.float32)
    raw = np.zeros((1, 12), dtype=np.float32)
    raw[0, 4:8] = (0.0, 0.1 * 224, 0.0, 0.3 * 224)  # kp0 = (0.5, 0.6), kp1 = (0.5, 0.8)
    opts = DecodeOptions("xywh", 224, 224, 224, 224, keypoint_box=(0, 1))
    np.testing.assert_allclose(decode_boxes(raw, anchors, opts)[0], (0.3, 0.4, 0.7, 0.8), atol=1e-6)


def test_sigmoid_is_finite_for_huge_logits() -> None:
    out = sigmoid(np.array([-1e6, 0.0, 1e6]))
    np.testing.assert_allclose(out, (0.0, 0.5, 1.0), atol=1e-6)


def test_nms_suppresses_overlaps_and_keeps_other_labels() -> None:
    boxes = np.array(
        [
            [0.10, 0.10, 0.50, 0.50],
            [0.12, 0.11, 0.52, 0.50],  # overlaps box 0, lower score, same class -> dropped
            [0.10, 0.10, 0.50, 0.50],  # same place, other class -> kept
            [0.60, 0.60, 0.90, 0.90],  # elsewhere -> kept
        ]
    )
    scores = np.array([0.9, 0.8, 0.7, 0.6])
    classes = np.array([1, 1, 2, 1])
    assert nms(boxes, scores, classes, 0.5).tolist() == [0, 2, 3]
    assert nms(boxes, scores, None, 0.5).tolist() == [0, 3]
    assert nms(boxes, scores, classes, 0.5, max_detections=2).tolist() == [0, 2]
    assert nms(np.zeros((0, 4)), np.zeros(0)).tolist() == []


def _greedy(boxes: np.ndarray, scores: np.ndarray, classes: np.ndarray, iou_threshold: float,
            max_detections: int) -> list[int]:
    """Textbook greedy NMS, one box at a time: the oracle for ``nms``."""
    kept: list[int] = []
    for i in sorted(range(len(scores)), key=lambda k: -scores[k]):  # sorted() is stable
        if len(kept) == max_detections:
            break
        x1, y1, x2, y2 = boxes[i]
        for j in kept:
            if classes[j] != classes[i]:
                continue
            a1, b1, a2, b2 = boxes[j]
            inter = max(min(x2, a2) - max(x1, a1), 0) * max(min(y2, b2) - max(y1, b1), 0)
            union = (x2 - x1) * (y2 - y1) + (a2 - a1) * (b2 - b1) - inter
            if inter / union > iou_threshold:
                break
        else:
            kept.append(i)
    return kept


@pytest.mark.parametrize("seed", range(4))
def test_nms_keeps_what_one_greedy_pass_keeps(seed: int) -> None:
    """Crowded and sparse sets, tied scores, few and many classes, and a ``max_detections``
    reached within the first candidates or only after all of them."""
    rng = np.random.default_rng(seed)
    for _ in range(60):
        n = int(rng.integers(1, 700))
        corner = rng.random((n, 2)) * rng.choice([0.1, 1.0])
        boxes = np.concatenate([corner, corner + 0.01 + rng.random((n, 2)) * 0.3], axis=1)
        boxes = boxes.astype(np.float32)
        scores = np.round(rng.random(n), 2).astype(np.float32)
        classes = rng.integers(0, int(rng.choice([1, 3, 80])), n)
        iou, most = float(rng.choice([0.3, 0.5, 0.6])), int(rng.choice([1, 10, 100]))
        assert nms(boxes, scores, classes, iou, most).tolist() == \
            _greedy(boxes, scores, classes, iou, most)
        assert nms(boxes, scores, None, iou, most).tolist() == \
            _greedy(boxes, scores, np.zeros(n), iou, most)


def test_a_box_with_an_infinite_or_nan_corner_spoils_no_other() -> None:
    boxes = np.array([[0.1, 0.1, np.inf, 0.5], [0.2, np.nan, 0.4, 0.4], [0.1, 0.1, 0.5, 0.5],
                      [0.12, 0.1, 0.5, 0.5], [0.6, 0.6, 0.9, 0.9]], dtype=np.float32)
    scores = np.array([0.95, 0.9, 0.8, 0.7, 0.6], dtype=np.float32)
    classes = np.array([1, 0, 0, 0, 2])
    kept = nms(boxes, scores, classes, 0.5).tolist()
    assert {2, 4} <= set(kept) and 3 not in kept  # 3 overlaps 2, its own class
    assert nms(boxes[2:], scores[2:], classes[2:], 0.5).tolist() == [0, 2]


def _ssd_postprocessor(label_filter: frozenset[str] | None = None, max_detections: int = 0
                       ) -> SsdPostprocessor:
    spec = BUILTIN_MODELS["ssd-mobilenetv2-oidv4"]
    assert spec.anchors is not None and spec.decode is not None
    return SsdPostprocessor(
        generate_anchors(spec.anchors), spec.decode, spec.labels, spec.threshold,
        spec.iou_threshold, ignore_classes=spec.ignore_classes, label_filter=label_filter,
        max_detections=max_detections or spec.max_detections)


def _encode_box(anchor: np.ndarray, box: tuple[float, float, float, float]) -> list[float]:
    x1, y1, x2, y2 = box
    ax, ay, aw, ah = anchor
    xc, yc, w, h = (x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1
    return [(yc - ay) / ah * 10, (xc - ax) / aw * 10, math.log(h / ah) * 5, math.log(w / aw) * 5]


def test_ssd_postprocessor_end_to_end() -> None:
    post = _ssd_postprocessor()
    n = post.num_anchors
    raw_boxes = np.zeros((1, n, 4), dtype=np.float32)
    logits = np.full((1, n, 24), -10.0, dtype=np.float32)
    person, car = OIDV4_LABELS.index("Person"), OIDV4_LABELS.index("Car")
    i, j = 1100, 1500
    raw_boxes[0, i] = _encode_box(post.anchors[i], (0.2, 0.1, 0.6, 0.9))
    logits[0, i, person] = 3.0
    logits[0, i, 0] = 9.0  # background is ignored even when it is the top class
    raw_boxes[0, j] = _encode_box(post.anchors[j], (0.7, 0.7, 1.2, 0.95))
    logits[0, j, car] = 1.0
    dets = post(raw_boxes, logits)
    assert [d.label for d in dets] == ["Person", "Car"]
    assert dets[0].score == pytest.approx(1 / (1 + math.exp(-3.0)), rel=1e-5)
    np.testing.assert_allclose(dets[0].box, (0.2, 0.1, 0.6, 0.9), atol=1e-5)
    np.testing.assert_allclose(dets[1].box, (0.7, 0.7, 1.0, 0.95), atol=1e-5)  # clipped to 1

    only_cars = _ssd_postprocessor(frozenset({"Car", "Vehicle"}))(raw_boxes, logits)
    assert [d.label for d in only_cars] == ["Car"]


@pytest.mark.parametrize("max_detections", [0, 1])
def test_a_batch_gives_each_frame_what_it_gives_alone(max_detections: int) -> None:
    """One NMS runs over the whole batch: no frame's boxes may suppress another's, and each
    frame keeps its own best ``max_detections``."""
    post = _ssd_postprocessor(max_detections=max_detections)
    n = post.num_anchors
    rng = np.random.default_rng(7)
    frames = 4
    raw_boxes = rng.normal(0.0, 1.0, (frames, n, 4)).astype(np.float32)
    logits = np.full((frames, n, 24), -10.0, dtype=np.float32)
    person = OIDV4_LABELS.index("Person")
    for anchor in (10, 11, 12, 900, n - 1):  # frame 0: neighbours overlap, NMS keeps some
        logits[0, anchor, person] = rng.uniform(0.5, 4.0)
    logits[2, 5, OIDV4_LABELS.index("Car")] = 2.0  # frame 1 and 3: nothing
    logits[2, n - 1, person] = 1.5  # the last anchor of a frame is that frame's, not the next
    raw_boxes[2, n - 1] = raw_boxes[0, n - 1]  # the same box as one of frame 0's
    alone = [post(raw_boxes[k], logits[k]) for k in range(frames)]
    batched = post.batch(raw_boxes, logits, frames)
    assert batched == alone
    assert [len(d) for d in batched][1::2] == [0, 0] and batched[0]
    assert len(batched[2]) == min(2, post.max_detections)
    assert len(batched[0]) <= post.max_detections


def test_label_filter_applies_before_argmax() -> None:
    post = _ssd_postprocessor(frozenset({"Person"}))
    n = post.num_anchors
    raw_boxes = np.zeros((n, 4), dtype=np.float32)
    logits = np.full((n, 24), -10.0, dtype=np.float32)
    logits[700, OIDV4_LABELS.index("Footwear")] = 5.0
    logits[700, OIDV4_LABELS.index("Person")] = 2.0
    dets = post(raw_boxes, logits)
    assert [d.label for d in dets] == ["Person"]


def test_label_filter_without_match_is_an_error() -> None:
    with pytest.raises(ModelError):
        _ssd_postprocessor(frozenset({"Spaceship"}))


def test_detection_output_parsing() -> None:
    out = np.zeros((1, 1, 6, 7), dtype=np.float32)
    out[0, 0, 0] = (0, 1, 0.95, 0.1, 0.2, 0.3, 0.4)
    out[0, 0, 1] = (0, 2, 0.40, 0.5, 0.5, 0.6, 0.6)  # below threshold
    out[0, 0, 2] = (0, 2, 0.80, -0.1, 0.5, 0.6, 1.3)  # clipped
    out[0, 0, 3] = (0, 7, 0.70, 0.1, 0.1, 0.2, 0.2)  # class id beyond labels
    out[0, 0, 4] = (-1, 0, 0, 0, 0, 0, 0)  # end marker
    out[0, 0, 5] = (0, 1, 0.99, 0.0, 0.0, 0.5, 0.5)  # after the marker: ignored
    labels = ["background", "face", "person"]
    dets = parse_detection_output(out, labels, threshold=0.5)
    assert [d.label for d in dets] == ["face", "person", "7"]
    np.testing.assert_allclose([d.score for d in dets], [0.95, 0.8, 0.7], rtol=1e-6)
    np.testing.assert_allclose(
        [d.box for d in dets],
        [(0.1, 0.2, 0.3, 0.4), (0.0, 0.5, 0.6, 1.0), (0.1, 0.1, 0.2, 0.2)],
        atol=1e-6,
    )
    assert all(isinstance(d, Detection) for d in dets)
    only = parse_detection_output(out, labels, 0.5, label_filter={"PERSON"})
    assert [d.label for d in only] == ["person"]
    assert parse_detection_output(np.zeros((1, 1, 0, 7)), labels, 0.5) == []
