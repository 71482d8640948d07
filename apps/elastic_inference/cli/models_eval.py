"""``ei models eval``: run a model on the frames of a truth file and print precision/recall.

Frames go through what a live stream's frames go through before the worker sees them (``ei
stream``'s downscale and JPEG encode, the worker's reduced-size decode and resize), so the
figures are those of the results ``ei infer`` would publish. The model runs once, at the
lowest threshold asked for; a sweep re-scores the same boxes at each threshold (non-maximum
suppression keeps a box whatever the lower-scored boxes, so this equals separate runs).
Matching is :mod:`.core.evaluate`.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..core.errors import ConfigError, ModelError, SourceError, TruthError
from ..core.evaluate import LabelMap, Report, Scored, evaluate, parse_map, parse_sweep
from ..core.result import Detection
from ..core.settings import StreamSettings
from ..core.truth import Truth, load_truth
from .table import table

_STREAM_DEFAULTS = {f.name: f.default for f in dataclasses.fields(StreamSettings)}


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "eval", help="measure a model against a truth file (precision, recall)",
        description="Run a model on the frames of a truth file and print per-label precision "
        "and recall at IoU >= 0.5 (doc/models.md, 'Measuring a model').")
    p.add_argument("--model", required=True, help="model name or path (as for ei infer)")
    p.add_argument("--video", type=Path, required=True, help="the video the truth describes")
    p.add_argument("--truth", type=Path, required=True,
                   help="truth file: the project's JSON or COCO annotations")
    p.add_argument("-d", "--model-dir", type=Path, default=Path("models"))
    p.add_argument("--device", default="CPU")
    p.add_argument("--type", default="", help="score as a worker of this inference type (its "
                   "label filter); default: keep the model's labels that map to a scored one")
    p.add_argument("--threshold", type=float, default=None,
                   help="score threshold (default: the model's own)")
    p.add_argument("--sweep", default="", metavar="START:STOP:STEP",
                   help="score at each threshold of a range, e.g. 0.3:0.7:0.05")
    p.add_argument("--labels", default="",
                   help="comma-separated labels to score (default: those in the truth file)")
    p.add_argument("--map", action="append", default=[], metavar="SRC=DST",
                   help="rename a label (model or truth) before matching; repeatable")
    p.add_argument("--no-builtin-map", action="store_true",
                   help="do not rename the SSD's Open Images labels to COCO names")
    p.add_argument("--iou", type=float, default=0.5, help="IoU a match needs (default 0.5)")
    p.add_argument("--max-width", type=int, default=_STREAM_DEFAULTS["max_width"],
                   help="downscale wider frames first, as ei stream does (0 = never)")
    p.add_argument("--jpeg-quality", type=int, default=_STREAM_DEFAULTS["jpeg_quality"],
                   help="JPEG-encode frames as ei stream does (0 = feed decoded frames as is)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")


def read_frames(video: Path, indices: Sequence[int]) -> Iterator[tuple[int, np.ndarray]]:
    """The frames at ``indices`` as OpenCV reads the video from the start (no seeking, which
    is not frame-exact for every codec)."""
    import cv2

    wanted = set(indices)
    last = max(wanted)
    cap = cv2.VideoCapture(str(video))
    if not cap.isOpened():
        raise SourceError(f"cannot open video {video}")
    try:
        index = 0
        while index <= last:
            ok, image = cap.read()
            if not ok:
                raise TruthError(f"the truth has frame {last} but {video} ends after "
                                 f"{index} frames; is it the video the truth describes?")
            if index in wanted:
                yield index, image
            index += 1
    finally:
        cap.release()


def as_streamed(image: np.ndarray, input_size: tuple[int, int], max_width: int,
                quality: int) -> np.ndarray:
    """The frame as the worker decodes it from what ``ei stream`` would send."""
    from ..engine.preprocess import decode_jpeg, encode_jpeg, reduction_for

    if quality <= 0:
        return image
    encoded = encode_jpeg(image, max_width, quality)
    if encoded is None:
        raise TruthError("a video frame could not be JPEG-encoded")
    jpeg, w, h = encoded
    return decode_jpeg(jpeg, reduction_for(w, h, input_size))


def run_model(args: argparse.Namespace, truth: Truth, lmap: LabelMap, labels: Sequence[str],
              threshold: float) -> tuple[dict[int, list[Scored]], dict[str, Any]]:
    """Detections per truth frame (pixels of the original frame), and facts for the report."""
    from ..engine.factory import load_detector
    from ..engine.models import resolve
    from ..engine.openvino_runtime import OpenVINODetector

    if args.type:
        detector = load_detector(args.type, args.model_dir, args.device, args.model, threshold)
    else:
        spec, _ = resolve("", args.model, args.model_dir, threshold)
        keep = frozenset(x for x in spec.labels if lmap(x) in labels)
        if spec.labels and not keep:
            raise ModelError(f"model {spec.name!r} has no label that maps to {', '.join(labels)}"
                             f" (its labels: {', '.join(spec.labels)}); use --map SRC=DST")
        detector = OpenVINODetector(spec, args.model_dir, device=args.device,
                                    label_filter=keep or None)
    out: dict[int, list[Scored]] = {}

    def scale(done: list[tuple[int, list[Detection]]]) -> None:
        for index, dets in done:
            w, h = sizes[index]
            out[index] = [Scored(d.label, d.score, (d.box[0] * w, d.box[1] * h,
                                                     d.box[2] * w, d.box[3] * h)) for d in dets]

    sizes: dict[int, tuple[int, int]] = {}
    try:  # streamed (prepare/submit/flush, as the worker does): memory stays flat
        for index, image in read_frames(args.video, sorted(truth.frames)):
            h, w = image.shape[:2]
            if truth.size is not None and truth.size != (w, h):
                raise TruthError(f"truth file {args.truth} is for {truth.size[0]}x"
                                 f"{truth.size[1]} frames but {args.video} has {w}x{h}")
            sizes[index] = (w, h)
            frame = as_streamed(image, detector.input_size, args.max_width, args.jpeg_quality)
            scale(detector.submit(detector.prepare(frame), index))
        scale(detector.flush())
        facts = {"model": detector.model, "device": detector.device,
                 "precision": detector.precision}
    finally:
        detector.close()
    return out, facts


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{v:.3f}"


def render(reports: Sequence[Report], facts: dict[str, Any]) -> str:
    rows = []
    for r in reports:
        items = list(r.labels.items()) + ([("all", r.total)] if len(r.labels) > 1 else [])
        rows += [(f"{r.threshold:.2f}", label, c.truth, c.detections, c.tp, c.fp, c.fn,
                  _pct(c.precision), _pct(c.recall)) for label, c in items]
    head = (f"model {facts['model']} on {facts['video']} ({facts['device']}, "
            f"{facts['precision']}): {facts['frames']} frames, IoU >= {facts['iou']}")
    if facts["unscored"]:
        head += (f"\nnot scored (the model has no such label; --map or --labels to change): "
                 f"{', '.join(facts['unscored'])}")
    return head + "\n" + table(rows, ("threshold", "label", "truth", "found", "tp", "fp", "fn",
                                      "precision", "recall"))


def run_eval(args: argparse.Namespace) -> str:
    """Everything but printing, so it can be called from a test."""
    truth = load_truth(args.truth)
    lmap = LabelMap(parse_map(args.map), builtin=not args.no_builtin_map)
    if not 0.0 < args.iou <= 1.0:
        raise ConfigError(f"--iou {args.iou}: must be in (0, 1]")
    from ..engine.models import resolve

    spec, _ = resolve(args.type, args.model, args.model_dir)
    if args.labels:
        labels = [lmap(x.strip()) for x in args.labels.split(",") if x.strip()]
        unscored: list[str] = []
    else:  # what the truth annotates and the model can report (all, if it names no labels)
        known = {lmap(x) for x in spec.labels}
        labels = [lmap(x) for x in truth.label_set()]
        unscored = [x for x in labels if known and x not in known]
        labels = [x for x in labels if x not in unscored]
        if not labels:
            raise ModelError(f"model {spec.name!r} reports none of the truth's labels "
                             f"{', '.join(truth.label_set())} (its labels: "
                             f"{', '.join(spec.labels)}); use --map SRC=DST")
    labels = list(dict.fromkeys(labels))
    thresholds = parse_sweep(args.sweep) if args.sweep else [
        args.threshold if args.threshold is not None else spec.threshold]
    found, facts = run_model(args, truth, lmap, labels, min(thresholds))
    reports = [evaluate(truth, found, threshold=t, labels=labels, label_map=lmap,
                        iou_threshold=args.iou) for t in thresholds]
    facts.update(video=args.video.name, truth=str(args.truth), frames=len(truth.frames),
                 iou=args.iou, labels=labels, unscored=unscored)
    if args.json:
        return json.dumps({**facts, "results": [r.to_json() for r in reports]}, indent=1)
    return render(reports, facts)
