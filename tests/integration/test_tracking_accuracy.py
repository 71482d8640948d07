"""The tracker and counter on the real people model, over a synthetic scene with exact truth.

tests/synthetic_scene.py renders people cut from vtest.avi walking known straight paths over
the empty square; the default people model (OpenVINO, models/) detects them frame by frame,
the tracker follows them and a vertical line through the middle counts crossings. Issue 15's
acceptance: IDF1 >= 0.8 (motmetrics) and the line's counts exact in both directions.
"""

from __future__ import annotations

from pathlib import Path

import motmetrics as mm
import numpy as np
import pytest

from elastic_inference.core.analytics.counting import Counter
from elastic_inference.core.analytics.rules import Rule
from elastic_inference.core.analytics.speed import replay, tracker_rate
from elastic_inference.core.analytics.tracker import Tracker
from elastic_inference.core.result import Box, Detection, Result, box_iou
from elastic_inference.engine.factory import load_detector
from elastic_inference.engine.preprocess import decode_jpeg
from tests.synthetic_scene import Scene, crossings, render

pytestmark = pytest.mark.integration

LINE = Rule("middle", "line", ((0.5, 0.0), (0.5, 1.0)), ("person",))


def distances(truth: list[Box], hyps: list[Box]) -> np.ndarray:
    """1 - IoU, NaN (no match) below IoU 0.5: what ``mm.distances.iou_matrix`` gives, which
    motmetrics 1.4 cannot compute under NumPy 2 (it calls the removed ``np.asfarray``)."""
    d = np.full((len(truth), len(hyps)), np.nan)
    for i, a in enumerate(truth):
        for j, b in enumerate(hyps):
            overlap = box_iou(a, b)
            if overlap >= 0.5:
                d[i, j] = 1.0 - overlap
    return d


@pytest.fixture(scope="module")
def detected(model_dir: Path, sample_dir: Path) -> tuple[Scene, list[list[Detection]]]:
    """The scene and the people model's detections for each of its frames."""
    scene = render(sample_dir / "vtest.avi")
    detector = load_detector("people", model_dir)
    try:
        found = detector.infer([decode_jpeg(j) for j in scene.jpegs])
    finally:
        detector.close()
    return scene, found


def test_synthetic_scene_idf1_and_exact_line_counts(
        detected: tuple[Scene, list[list[Detection]]]) -> None:
    scene, found = detected
    w, h = scene.size
    tracker, counter = Tracker(), Counter([LINE])
    acc = mm.MOTAccumulator(auto_id=True)
    for seq, (truth, dets) in enumerate(zip(scene.truth, found, strict=True)):
        tracks = [t for t in tracker.update(dets, seq, seq / 10) if t.label == "person"]
        counter.update(tracks, seq, seq / 10)
        hyps = [t for t in tracks if t.misses == 0]
        boxes = [(t.box[0] * w, t.box[1] * h, t.box[2] * w, t.box[3] * h) for t in hyps]
        acc.update(list(truth), [t.id for t in hyps], distances(list(truth.values()), boxes))
    summary = mm.metrics.create().compute(acc, metrics=["idf1", "mota", "num_switches"])
    idf1, mota = float(summary["idf1"].iloc[0]), float(summary["mota"].iloc[0])
    figures = f"IDF1={idf1:.3f} MOTA={mota:.3f} switches={int(summary['num_switches'].iloc[0])}"
    print(figures)
    assert idf1 >= 0.8, figures
    expected = crossings((LINE.points[0], LINE.points[1]), scene.size)
    assert expected == {"a->b": 2, "b->a": 2}  # the scene is the one the truth describes
    counted = {d: counter.crossings[("middle", d, "person")] for d in ("a->b", "b->a")}
    assert counted == expected, figures


def test_results_out_of_order_through_the_wire_count_the_same(
        detected: tuple[Scene, list[list[Detection]]]) -> None:
    """Result JSON arriving in reverse order within runs of 6, decoded and put back in order
    (what ``ei track`` will do, and what ``tracker_rate`` times): the same exact counts."""
    scene, found = detected
    messages = [Result("synthetic", "people", seq, seq / 10, seq / 10, "m", "CPU",
                       scene.size[0], scene.size[1], tuple(dets)).encode()
                for seq, dets in enumerate(found)]
    for a in range(0, len(messages), 6):  # each run of 6 arrives last first
        messages[a:a + 6] = messages[a:a + 6][::-1]
    counter = replay(messages, [LINE])
    expected = crossings((LINE.points[0], LINE.points[1]), scene.size)
    assert {d: counter.crossings[("middle", d, "person")] for d in expected} == expected
    print(f"{tracker_rate(messages, [LINE], min_seconds=0.5):.0f} messages/s per core")
