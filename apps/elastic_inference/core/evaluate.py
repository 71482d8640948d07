"""Scoring detections against a truth file: per-label precision and recall at IoU >= 0.5.

Matching, per frame and per label, greedily by score (highest first): a detection takes the
unmatched truth box it overlaps most if that IoU reaches the bar (a true positive); otherwise
it is dropped when it falls on an ``ignore`` box (IoU at the bar, or at least half of the
detection inside it), and is a false positive else, so a second box on an already matched
object is a false positive. Truth boxes left unmatched are false negatives. Labels go through
a :class:`LabelMap` first, so models with different label names can be scored on one file.

Pure Python, no engine: the CLI (``ei models eval``) runs the model and hands the boxes here.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .errors import ConfigError
from .result import Box, box_iou
from .truth import Truth, TruthBox

IOU_THRESHOLD = 0.5
#: Share of a detection inside an ``ignore`` box that drops it.
IGNORE_INSIDE = 0.5

#: The Open Images names of the built-in SSD (engine.models.OIDV4_LABELS) in COCO spelling,
#: so it and a COCO model score on the same truth file. ``Vehicle`` has no COCO class; it
#: stays ``vehicle`` (map it with ``--map vehicle=truck`` if the truth calls the van a truck).
BUILTIN_ALIASES: Mapping[str, str] = {
    "Person": "person", "Car": "car", "Bicycle": "bicycle", "Dog": "dog", "Cat": "cat",
    "Chair": "chair", "Laptop": "laptop", "Bottle": "bottle", "Book": "book",
    "Computer mouse": "mouse", "Computer monitor": "tv", "Mug": "cup", "Coffee cup": "cup",
    "Table": "dining table", "Desk": "dining table", "Cattle": "cow", "Vehicle": "vehicle",
}  # fmt: skip


@dataclass(frozen=True)
class Scored:
    """One detection in pixels of the original frame."""

    label: str
    score: float
    box: Box


@dataclass(frozen=True)
class LabelMap:
    """Label renaming applied to detections and truth alike: the user's ``SRC=DST`` pairs
    first (exact, then case-insensitive), then :data:`BUILTIN_ALIASES`; else unchanged."""

    pairs: Mapping[str, str] = field(default_factory=dict)
    builtin: bool = True

    def __call__(self, label: str) -> str:
        if label in self.pairs:
            return self.pairs[label]
        folded = {k.casefold(): v for k, v in self.pairs.items()}
        if label.casefold() in folded:
            return folded[label.casefold()]
        if self.builtin and label in BUILTIN_ALIASES:
            return BUILTIN_ALIASES[label]
        return label


def parse_map(items: Iterable[str]) -> dict[str, str]:
    """``["Person=person", "Car=car"]`` -> ``{"Person": "person", "Car": "car"}``."""
    pairs: dict[str, str] = {}
    for item in items:
        src, sep, dst = item.partition("=")
        if not sep or not src.strip() or not dst.strip():
            raise ConfigError(f"--map {item!r}: expected SOURCE=TARGET, e.g. Person=person")
        pairs[src.strip()] = dst.strip()
    return pairs


def parse_sweep(spec: str) -> list[float]:
    """``"0.3:0.7:0.05"`` -> ``[0.3, 0.35, ..., 0.7]`` (both ends included)."""
    try:
        start, stop, step = (float(x) for x in spec.split(":"))
    except ValueError:
        raise ConfigError(f"--sweep {spec!r}: expected START:STOP:STEP, e.g. 0.3:0.7:0.05")\
            from None
    if not (0.0 < start <= stop < 1.0) or step <= 0:
        raise ConfigError(f"--sweep {spec!r}: needs 0 < START <= STOP < 1 and STEP > 0")
    count = math.floor((stop - start) / step + 1e-9) + 1
    return [round(start + i * step, 6) for i in range(count)]


@dataclass(frozen=True)
class Counts:
    """True/false positives and false negatives of one label (or all)."""

    tp: int = 0
    fp: int = 0
    fn: int = 0

    def __add__(self, other: Counts) -> Counts:
        return Counts(self.tp + other.tp, self.fp + other.fp, self.fn + other.fn)

    @property
    def truth(self) -> int:
        return self.tp + self.fn

    @property
    def detections(self) -> int:
        return self.tp + self.fp

    @property
    def precision(self) -> float | None:
        """None when nothing was detected (undefined, not perfect)."""
        return self.tp / self.detections if self.detections else None

    @property
    def recall(self) -> float | None:
        """None when the truth holds no such object."""
        return self.tp / self.truth if self.truth else None

    def to_json(self) -> dict[str, Any]:
        def r(v: float | None) -> float | None:
            return None if v is None else round(v, 4)
        return {"truth": self.truth, "detections": self.detections, "tp": self.tp,
                "fp": self.fp, "fn": self.fn, "precision": r(self.precision),
                "recall": r(self.recall)}


def _inside(det: Box, region: Box) -> float:
    """Share of ``det``'s area inside ``region``."""
    iw = max(0.0, min(det[2], region[2]) - max(det[0], region[0]))
    ih = max(0.0, min(det[3], region[3]) - max(det[1], region[1]))
    area = (det[2] - det[0]) * (det[3] - det[1])
    return iw * ih / area if area > 0 else 0.0


def match_frame(detections: Sequence[Scored], truths: Sequence[TruthBox],
                iou_threshold: float = IOU_THRESHOLD) -> dict[str, Counts]:
    """Counts per label for one frame (labels already mapped; see the module docstring)."""
    labels = {d.label for d in detections} | {t.label for t in truths if not t.ignore}
    out: dict[str, Counts] = {}
    for label in labels:
        real = [t.box for t in truths if t.label == label and not t.ignore]
        ignored = [t.box for t in truths if t.label == label and t.ignore]
        matched = [False] * len(real)
        tp = fp = 0
        for det in sorted((d for d in detections if d.label == label),
                          key=lambda d: d.score, reverse=True):
            best, best_iou = -1, iou_threshold
            for i, box in enumerate(real):
                if not matched[i]:
                    iou = box_iou(det.box, box)
                    if iou >= best_iou:
                        best, best_iou = i, iou
            if best >= 0:
                matched[best] = True
                tp += 1
            elif not any(box_iou(det.box, r) >= iou_threshold
                         or _inside(det.box, r) >= IGNORE_INSIDE for r in ignored):
                fp += 1
        out[label] = Counts(tp, fp, len(real) - sum(matched))
    return out


@dataclass(frozen=True)
class Report:
    """Scores of one model at one score threshold over the truth frames."""

    threshold: float
    frames: int
    labels: Mapping[str, Counts]

    @property
    def total(self) -> Counts:
        return sum(self.labels.values(), Counts())

    def to_json(self) -> dict[str, Any]:
        return {"threshold": self.threshold, "frames": self.frames,
                "labels": {k: v.to_json() for k, v in self.labels.items()},
                "all": self.total.to_json()}


def evaluate(truth: Truth, detections: Mapping[int, Sequence[Scored]], *,
             threshold: float = 0.0, labels: Sequence[str] | None = None,
             label_map: LabelMap | None = None,
             iou_threshold: float = IOU_THRESHOLD) -> Report:
    """Score ``detections`` (frame index -> boxes) at ``threshold`` on every truth frame.

    ``labels`` (after mapping) are the ones scored, by default those the truth file
    annotates; detections of other labels are left out, since the truth says nothing of them.
    A truth frame with no entry in ``detections`` counts as a frame where nothing was found.
    """
    lmap = label_map or LabelMap()
    wanted = list(dict.fromkeys(labels if labels is not None
                                else (lmap(x) for x in truth.label_set())))
    keep = set(wanted)
    totals = {label: Counts() for label in wanted}
    for index, boxes in truth.frames.items():
        mapped = [TruthBox(lmap(t.label), t.box, t.ignore) for t in boxes]
        dets = [Scored(lmap(d.label), d.score, d.box) for d in detections.get(index, ())
                if d.score >= threshold]
        per_label = match_frame([d for d in dets if d.label in keep],
                                [t for t in mapped if t.label in keep], iou_threshold)
        for label, counts in per_label.items():
            totals[label] = totals[label] + counts
    return Report(threshold=threshold, frames=len(truth.frames), labels=totals)
