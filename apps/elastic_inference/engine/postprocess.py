"""Model outputs -> ``list[Detection]``; numpy and OpenCV, no openvino, so it is unit-testable
anywhere.

Two families are supported:

* ``mediapipe-ssd``: raw SSD heads (box regressions per anchor + class logits) as exported by
  MediaPipe (BlazeFace, BlazePose detector, SSD MobileNetV2 OIDv4). Anchors are generated exactly
  like MediaPipe's ``SsdAnchorsCalculator``; decoding follows ``TensorsToDetectionsCalculator``.
* ``omz-ssd``: Open Model Zoo style models whose graph ends in ``DetectionOutput``
  (``[1, 1, N, 7]`` rows of ``image_id, label, conf, x1, y1, x2, y2``), NMS already applied.

The model input is a plain resize of the whole frame, so normalised model coordinates are
normalised frame coordinates and no letterbox correction is needed.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import cv2
import numpy as np
import numpy.typing as npt

from ..core.errors import ModelError
from ..core.result import Detection

FloatArray = npt.NDArray[np.float32]

# MediaPipe clips logits to +-100 before the sigmoid; 80 keeps float32 exp() finite and gives
# the same scores (sigmoid(-80) is 1.8e-35).
_LOGIT_CLIP = 80.0


@dataclass(frozen=True)
class AnchorOptions:
    """The fields of MediaPipe's ``SsdAnchorsCalculatorOptions`` that the models here use."""

    num_layers: int
    min_scale: float
    max_scale: float
    input_w: int
    input_h: int
    strides: tuple[int, ...]
    aspect_ratios: tuple[float, ...] = (1.0,)
    anchor_offset_x: float = 0.5
    anchor_offset_y: float = 0.5
    reduce_boxes_in_lowest_layer: bool = False
    interpolated_scale_aspect_ratio: float = 1.0
    fixed_anchor_size: bool = False


@dataclass(frozen=True)
class DecodeOptions:
    """How raw box regressions map onto anchors (``TensorsToDetectionsCalculator`` options).

    ``order`` is the order of the first four regression values: ``yxhw`` for the TF object
    detection API SSDs, ``xywh`` for BlazeFace/BlazePose (MediaPipe's ``reverse_output_order``).
    """

    order: Literal["yxhw", "xywh"]
    x_scale: float
    y_scale: float
    w_scale: float
    h_scale: float
    exp_size: bool = False
    # (centre keypoint, radius keypoint): replace the regressed box by the square around the
    # centre keypoint reaching the radius keypoint. The BlazePose detector's box is the face;
    # its keypoints 0 (mid-hip) and 1 (full-body radius) give the whole person.
    keypoint_box: tuple[int, int] | None = None


def _calculate_scale(min_scale: float, max_scale: float, index: int, count: int) -> float:
    if count == 1:
        return (min_scale + max_scale) * 0.5
    return min_scale + (max_scale - min_scale) * index / (count - 1.0)


def generate_anchors(opts: AnchorOptions) -> FloatArray:
    """Anchors as ``[N, 4]`` float32 rows of ``x_center, y_center, w, h`` (normalised).

    A line-by-line port of MediaPipe's ``SsdAnchorsCalculator::GenerateAnchors`` (without the
    multiscale/feature-map-size variants, which none of our models use), so the anchor order
    matches the order of the model's output rows.
    """
    if opts.num_layers != len(opts.strides):
        raise ModelError(
            f"anchor options: {opts.num_layers} layers but {len(opts.strides)} strides"
        )
    rows: list[tuple[float, float, float, float]] = []
    n_strides = len(opts.strides)
    layer_id = 0
    while layer_id < opts.num_layers:
        heights: list[float] = []
        widths: list[float] = []
        ratios: list[float] = []
        scales: list[float] = []
        last = layer_id
        while last < n_strides and opts.strides[last] == opts.strides[layer_id]:
            scale = _calculate_scale(opts.min_scale, opts.max_scale, last, n_strides)
            if last == 0 and opts.reduce_boxes_in_lowest_layer:
                ratios += [1.0, 2.0, 0.5]
                scales += [0.1, scale, scale]
            else:
                for ratio in opts.aspect_ratios:
                    ratios.append(ratio)
                    scales.append(scale)
                if opts.interpolated_scale_aspect_ratio > 0.0:
                    scale_next = (
                        1.0
                        if last == n_strides - 1
                        else _calculate_scale(opts.min_scale, opts.max_scale, last + 1, n_strides)
                    )
                    scales.append(math.sqrt(scale * scale_next))
                    ratios.append(opts.interpolated_scale_aspect_ratio)
            last += 1
        for ratio, scale in zip(ratios, scales, strict=True):
            root = math.sqrt(ratio)
            heights.append(scale / root)
            widths.append(scale * root)
        stride = opts.strides[layer_id]
        fm_h = math.ceil(opts.input_h / stride)
        fm_w = math.ceil(opts.input_w / stride)
        for y in range(fm_h):
            for x in range(fm_w):
                xc = (x + opts.anchor_offset_x) / fm_w
                yc = (y + opts.anchor_offset_y) / fm_h
                for w, h in zip(widths, heights, strict=True):
                    if opts.fixed_anchor_size:
                        rows.append((xc, yc, 1.0, 1.0))
                    else:
                        rows.append((xc, yc, w, h))
        layer_id = last
    return np.asarray(rows, dtype=np.float32)


def decode_boxes(raw: npt.ArrayLike, anchors: FloatArray, opts: DecodeOptions) -> FloatArray:
    """Regressions ``[N, >=4]`` -> boxes ``[N, 4]`` as ``x1, y1, x2, y2`` (normalised, unclipped).

    SSD (``yxhw``, exp): ``yc = ty/10*ah + ay``, ``h = exp(th/5)*ah``; BlazeFace (``xywh``,
    linear): ``xc = tx/128*aw + ax``, ``w = tw/128*aw`` (anchor w/h are 1 with fixed size).
    """
    r = np.asarray(raw, dtype=np.float32).reshape(anchors.shape[0], -1)
    if opts.order == "yxhw":
        ty, tx, th, tw = r[:, 0], r[:, 1], r[:, 2], r[:, 3]
    else:
        tx, ty, tw, th = r[:, 0], r[:, 1], r[:, 2], r[:, 3]
    ax, ay, aw, ah = anchors[:, 0], anchors[:, 1], anchors[:, 2], anchors[:, 3]
    if opts.keypoint_box is not None:
        c, k = (4 + 2 * i for i in opts.keypoint_box)
        cx = r[:, c] / opts.x_scale * aw + ax
        cy = r[:, c + 1] / opts.y_scale * ah + ay
        kx = r[:, k] / opts.x_scale * aw + ax
        ky = r[:, k + 1] / opts.y_scale * ah + ay
        rad = np.hypot(kx - cx, ky - cy)
        return np.stack([cx - rad, cy - rad, cx + rad, cy + rad], axis=1).astype(np.float32)
    xc = tx / opts.x_scale * aw + ax
    yc = ty / opts.y_scale * ah + ay
    if opts.exp_size:
        w = np.exp(np.minimum(tw / opts.w_scale, 20.0)) * aw
        h = np.exp(np.minimum(th / opts.h_scale, 20.0)) * ah
    else:
        w = tw / opts.w_scale * aw
        h = th / opts.h_scale * ah
    return np.stack([xc - w / 2, yc - h / 2, xc + w / 2, yc + h / 2], axis=1).astype(np.float32)


def sigmoid(x: npt.ArrayLike) -> FloatArray:
    """Logistic function with MediaPipe's logit clipping (no overflow warnings)."""
    z = np.clip(np.asarray(x, dtype=np.float32), -_LOGIT_CLIP, _LOGIT_CLIP)
    return (1.0 / (1.0 + np.exp(-z))).astype(np.float32)


def _logit(p: float) -> float:
    p = min(max(p, 1e-7), 1 - 1e-7)
    return math.log(p / (1 - p))


def best_class(
    scores: FloatArray, allowed: npt.NDArray[np.intp]
) -> tuple[npt.NDArray[np.intp], FloatArray]:
    """Per row of ``[N, nc]`` scores: the best allowed class id and its score.

    One allowed class (``people``) or all of them (``object``) read the scores in place: a
    fancy-indexed copy of NanoDet's 3,549 x 80 scores cost more than the argmax itself.
    """
    n = scores.shape[0]
    if allowed.size == 1:
        return np.full(n, allowed[0], dtype=np.intp), scores[:, int(allowed[0])]
    sub = scores if allowed.size == scores.shape[1] else scores[:, allowed]
    best = np.argmax(sub, axis=1)
    top = np.take_along_axis(sub, best[:, np.newaxis], axis=1)[:, 0]
    return (best if sub is scores else allowed[best]), top


def nms(
    boxes: npt.ArrayLike,
    scores: npt.ArrayLike,
    classes: npt.ArrayLike | None = None,
    iou_threshold: float = 0.5,
    max_detections: int = 100,
) -> npt.NDArray[np.intp]:
    """Greedy per-class non-maximum suppression; returns kept indices, best score first (ties
    in input order).

    OpenCV's (C++) makes the greedy pass: a box is kept when its IoU with every kept box of its
    class is at most ``iou_threshold``. It wants ``(x, y, w, h)`` boxes and scores above a
    threshold, so each box's rank in the stable best-first order is passed as its score. It
    cannot stop at ``max_detections``, so it first runs on the best few candidates, which
    decide alone whether each of them is kept: if enough are, that is the answer. Against the
    numpy loop it replaced (one step per kept box; the same indices on 6,000 random sets of up
    to 80 classes with tied scores): 0.03 against 0.09 ms on 5 candidates, 0.5 against 2.1 on
    300 of 20 classes, 1.0 against 4.6 on 2,000 of 80; 2.6 against 2.2 where fewer than
    ``max_detections`` survive a crowd (2,000 boxes of one class in a twentieth of the frame).
    Boxes that have no area suppress each other here (they were kept, to be dropped later).
    """
    b = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
    s = np.asarray(scores, dtype=np.float32).reshape(-1)
    n = b.shape[0]
    if n == 0:
        return np.zeros(0, dtype=np.intp)
    order = np.argsort(-s, kind="stable")
    xywh = np.empty((n, 4), dtype=np.float64)
    xywh[:, :2] = b[order, :2]
    xywh[:, 2:] = np.maximum(b[order, 2:] - b[order, :2], 0.0)
    if classes is not None:
        # Classes shifted apart (boxes are normalised) so theirs never overlap; OpenCV's own
        # batched form shifts by the largest coordinate, which one infinite box would spoil.
        xywh[:, :2] += np.asarray(classes, dtype=np.float64).reshape(-1)[order, np.newaxis] * 4
    rank = np.arange(n, 0, -1, dtype=np.float32)
    dnn: Any = cv2.dnn  # its stubs ask for sequences; it takes (and reads fastest) arrays
    m = min(n, 4 * max_detections)
    while True:
        kept = np.asarray(dnn.NMSBoxes(xywh[:m], rank[:m], 0.0, float(iou_threshold)),
                          dtype=np.intp).reshape(-1)
        if m == n or kept.size >= max_detections:
            return order[kept[:max_detections]]
        m = min(n, 4 * m)


def to_detections(boxes: FloatArray, scores: FloatArray, labels: Sequence[str]) -> list[Detection]:
    """Detections of normalised boxes, clipped to the frame; one with no area left is dropped."""
    return [d for _, d in _placed(boxes, scores, labels, [0] * len(labels))]


def _placed(boxes: FloatArray, scores: FloatArray, labels: Sequence[str], images: Sequence[int]
            ) -> Iterator[tuple[int, Detection]]:
    """``(image, detection)`` of each box, clipped to its frame; one with no area left is
    skipped."""
    clipped = np.clip(boxes, 0.0, 1.0)
    for image, (x1, y1, x2, y2), score, label in zip(
        images, clipped.tolist(), scores.tolist(), labels, strict=True
    ):
        if x2 > x1 and y2 > y1:
            yield image, Detection(label=label, score=float(score), box=(x1, y1, x2, y2))


def _allowed_classes(
    labels: Sequence[str], ignore: Collection[int], label_filter: Collection[str] | None
) -> list[int]:
    wanted = None if label_filter is None else {x.casefold() for x in label_filter}
    return [
        i
        for i, name in enumerate(labels)
        if i not in ignore and (wanted is None or name.casefold() in wanted)
    ]


class SsdPostprocessor:
    """Decodes one image's raw MediaPipe SSD outputs; anchors and class masks are built once.

    Like MediaPipe, each anchor keeps its best class (among the allowed ones: restricting the
    classes *before* the argmax means a ``people`` detector is not robbed of a person box whose
    top class happened to be ``Footwear``), then threshold, then per-class NMS.
    """

    def __init__(
        self,
        anchors: FloatArray,
        decode: DecodeOptions,
        labels: Sequence[str],
        threshold: float,
        iou_threshold: float,
        ignore_classes: Collection[int] = (),
        label_filter: Collection[str] | None = None,
        max_detections: int = 100,
    ) -> None:
        self.anchors = anchors
        self.decode = decode
        self.labels = tuple(labels)
        self.threshold = threshold
        self.iou_threshold = iou_threshold
        self.max_detections = max_detections
        self.classes = np.asarray(
            _allowed_classes(self.labels, ignore_classes, label_filter), dtype=np.intp
        )
        if self.classes.size == 0:
            raise ModelError(f"no class of {list(self.labels)} passes the label filter")
        self._logit_threshold = _logit(threshold)

    @property
    def num_anchors(self) -> int:
        return int(self.anchors.shape[0])

    def __call__(self, raw_boxes: npt.ArrayLike, raw_scores: npt.ArrayLike) -> list[Detection]:
        return self.batch(raw_boxes, raw_scores, 1)[0]

    def batch(self, raw_boxes: npt.ArrayLike, raw_scores: npt.ArrayLike, frames: int
              ) -> list[list[Detection]]:
        """The detections of each of ``frames`` images whose outputs are stacked on the first
        axis. One numpy pass and one NMS over the whole batch: this is time the worker's
        thread holds the GIL its decode threads need (the worker ran 200 us a frame of such
        Python on that thread 14 % slower, four alternating pairs on 2 cores). On BlazeFace's
        requests of eight frames of Megamind.avi: 18-28 us of CPU a frame, against 45-62 with
        the numpy NMS once per frame (two alternating runs in one process)."""
        n = self.num_anchors
        logits = np.asarray(raw_scores, dtype=np.float32).reshape(frames * n, -1)
        cls_idx, cls_logit = best_class(logits, self.classes)
        # Threshold in logit space: the sigmoid only runs on the survivors.
        cand = np.flatnonzero(cls_logit >= self._logit_threshold)
        out: list[list[Detection]] = [[] for _ in range(frames)]
        if cand.size == 0:
            return out
        raw = np.asarray(raw_boxes, dtype=np.float32).reshape(frames * n, -1)[cand]
        boxes = decode_boxes(raw, self.anchors[cand % n], self.decode)
        scores = sigmoid(cls_logit[cand])
        classes = cls_idx[cand]
        # One NMS for the whole batch, each image's classes kept apart from the others'; then
        # each image's best ``max_detections``, as an NMS per image would stop at.
        image = cand // n
        images = image.tolist()
        keep: list[int] = []
        counts = [0] * frames
        for i in nms(boxes, scores, image * len(self.labels) + classes, self.iou_threshold,
                     cand.size).tolist():
            if counts[images[i]] < self.max_detections:
                counts[images[i]] += 1
                keep.append(i)
        for img, detection in _placed(boxes[keep], scores[keep],
                                      [self.labels[int(k)] for k in classes[keep]],
                                      [images[i] for i in keep]):
            out[img].append(detection)
        return out


class DetectionOutputPostprocessor:
    """Parses OMZ ``DetectionOutput`` ``[1, 1, N, 7]``; the model already ran NMS.

    Rows with ``image_id < 0`` mark the end of the valid detections. A class id outside the label
    list becomes its decimal string, so a model without a labels file still works.
    """

    def __init__(
        self,
        labels: Sequence[str],
        threshold: float,
        label_filter: Collection[str] | None = None,
    ) -> None:
        self.labels = tuple(labels)
        self.threshold = threshold
        self.wanted = None if label_filter is None else {x.casefold() for x in label_filter}

    def label_of(self, class_id: int) -> str:
        if 0 <= class_id < len(self.labels):
            return self.labels[class_id]
        return str(class_id)

    def __call__(self, output: npt.ArrayLike) -> list[Detection]:
        rows = np.asarray(output, dtype=np.float32).reshape(-1, 7)
        ends = np.flatnonzero(rows[:, 0] < 0)
        if ends.size:
            rows = rows[: ends[0]]
        rows = rows[rows[:, 2] >= self.threshold]
        if rows.size == 0:
            return []
        order = np.argsort(-rows[:, 2], kind="stable")
        rows = rows[order]
        labels = [self.label_of(int(c)) for c in rows[:, 1]]
        if self.wanted is not None:
            mask = np.asarray([lab.casefold() in self.wanted for lab in labels], dtype=bool)
            rows = rows[mask]
            labels = [lab for lab, m in zip(labels, mask, strict=True) if m]
        return to_detections(rows[:, 3:7], rows[:, 2], labels)


def parse_detection_output(
    output: npt.ArrayLike,
    labels: Sequence[str],
    threshold: float,
    label_filter: Collection[str] | None = None,
) -> list[Detection]:
    """One-shot form of :class:`DetectionOutputPostprocessor`."""
    return DetectionOutputPostprocessor(labels, threshold, label_filter)(output)
