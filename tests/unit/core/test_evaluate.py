"""Matching of detections to truth on hand-made boxes (core.evaluate)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from elastic_inference.core.errors import ConfigError
from elastic_inference.core.evaluate import (
    Counts,
    LabelMap,
    Scored,
    evaluate,
    match_frame,
    parse_map,
    parse_sweep,
)
from elastic_inference.core.result import Box
from elastic_inference.core.truth import Truth, TruthBox

A: Box = (0.0, 0.0, 100.0, 100.0)
B: Box = (200.0, 0.0, 300.0, 100.0)


def det(box: Box, score: float = 0.9,
        label: str = "person") -> Scored:
    return Scored(label, score, box)


def shifted(box: Box, dx: float) -> Box:
    return (box[0] + dx, box[1], box[2] + dx, box[3])


def test_exact_hits_and_a_miss() -> None:
    counts = match_frame([det(A)], [TruthBox("person", A), TruthBox("person", B)])
    assert counts == {"person": Counts(tp=1, fp=0, fn=1)}
    assert counts["person"].precision == 1.0
    assert counts["person"].recall == 0.5


def test_iou_bar_is_inclusive_at_half() -> None:
    # 120 px wide, shifted by a third of that: IoU = 8000 / 16000 = 0.5 exactly.
    wide: Box = (0.0, 0.0, 120.0, 100.0)
    assert match_frame([det(shifted(wide, 40))], [TruthBox("person", wide)])["person"].tp == 1
    # A pixel further, and it is a false positive plus a missed person.
    worse = shifted(wide, 41)
    assert match_frame([det(worse)], [TruthBox("person", wide)])["person"] == Counts(0, 1, 1)


def test_duplicate_detection_is_a_false_positive() -> None:
    counts = match_frame([det(A, 0.9), det(shifted(A, 5), 0.8)], [TruthBox("person", A)])
    assert counts["person"] == Counts(tp=1, fp=1, fn=0)


def test_greedy_by_score_lets_the_higher_score_choose_first() -> None:
    # The confident box fits both people and takes the one it overlaps most (IoU 0.74 vs
    # 0.6); the weak box then only overlaps a taken person. Taken in the other order both
    # would match, so this pins the order: by score, highest first, as COCO does.
    left: Box = (0.0, 0.0, 100.0, 100.0)
    right: Box = (40.0, 0.0, 140.0, 100.0)
    strong = det((15.0, 0.0, 115.0, 100.0), 0.9)
    weak = det((-20.0, 0.0, 80.0, 100.0), 0.5)
    counts = match_frame([weak, strong], [TruthBox("person", left), TruthBox("person", right)])
    assert counts["person"] == Counts(tp=1, fp=1, fn=1)


def test_each_detection_takes_its_best_unmatched_box() -> None:
    left: Box = (0.0, 0.0, 50.0, 100.0)
    right: Box = (40.0, 0.0, 90.0, 100.0)
    # The first detection fits ``right`` best; the second, between both, then gets ``left``.
    counts = match_frame([det((38.0, 0.0, 90.0, 100.0), 0.9), det((5.0, 0.0, 55.0, 100.0), 0.8)],
                         [TruthBox("person", left), TruthBox("person", right)])
    assert counts["person"] == Counts(tp=2, fp=0, fn=0)


def test_ignore_boxes_count_neither_way() -> None:
    truths = [TruthBox("person", A), TruthBox("person", B, ignore=True)]
    # Found: not a true positive; missed: not a false negative.
    assert match_frame([det(A), det(B)], truths)["person"] == Counts(1, 0, 0)
    assert match_frame([det(A)], truths)["person"] == Counts(1, 0, 0)
    # A small box mostly inside an ignore region is dropped too, even at a low IoU.
    inner = (210.0, 10.0, 240.0, 60.0)
    assert match_frame([det(inner)], truths)["person"] == Counts(0, 0, 1)
    # ...but not when most of it is outside.
    outside = (280.0, 0.0, 380.0, 100.0)
    assert match_frame([det(outside)], truths)["person"] == Counts(0, 1, 1)


def test_ignore_region_does_not_swallow_a_real_match() -> None:
    # A real person standing inside an ignored group still needs finding.
    group = (0.0, 0.0, 300.0, 100.0)
    counts = match_frame([det(A)], [TruthBox("person", group, ignore=True),
                                    TruthBox("person", A)])
    assert counts["person"] == Counts(1, 0, 0)


def test_labels_are_matched_separately() -> None:
    counts = match_frame([det(A, label="car")], [TruthBox("person", A)])
    assert counts == {"car": Counts(0, 1, 0), "person": Counts(0, 0, 1)}
    assert counts["car"].recall is None
    assert counts["person"].precision is None


def truth() -> Truth:
    return Truth(frames={0: (TruthBox("person", A), TruthBox("truck", B)),
                         20: (TruthBox("person", B),),
                         40: ()},
                 labels=("person", "truck"))


def test_evaluate_over_frames_with_threshold_and_map() -> None:
    found = {0: [Scored("Person", 0.7, A), Scored("Vehicle", 0.6, B)],
             20: [Scored("Person", 0.4, B)],
             40: [Scored("Person", 0.55, A), Scored("Footwear", 0.9, B)]}
    lmap = LabelMap(parse_map(["vehicle=truck"]))
    report = evaluate(truth(), found, threshold=0.5, label_map=lmap)
    assert report.frames == 3
    # Frame 20's person scored under the threshold: missed. Frame 40's box: a false positive.
    # Footwear is not a label of the truth, so it is left out instead of counted.
    assert report.labels == {"person": Counts(1, 1, 1), "truck": Counts(1, 0, 0)}
    assert report.total == Counts(2, 1, 1)
    lower = evaluate(truth(), found, threshold=0.3, label_map=lmap)
    assert lower.labels["person"] == Counts(2, 1, 0)
    # Without the map the SSD's "Vehicle" is "vehicle", and the truck is missed.
    plain = evaluate(truth(), found, threshold=0.5)
    assert plain.labels["truck"] == Counts(0, 0, 1)


def test_evaluate_only_the_labels_asked_for() -> None:
    found = {0: [Scored("person", 0.9, A)]}
    report = evaluate(truth(), found, labels=["truck"])
    assert report.labels == {"truck": Counts(0, 0, 1)}


def test_frames_without_detections_are_misses() -> None:
    report = evaluate(truth(), {})
    assert report.labels == {"person": Counts(0, 0, 2), "truck": Counts(0, 0, 1)}
    assert report.to_json()["labels"]["person"]["precision"] is None
    assert report.to_json()["all"]["recall"] == 0.0


def test_label_map_user_pairs_win_and_ignore_case() -> None:
    lmap = LabelMap({"Car": "vehicle", "TRUCK": "vehicle"})
    assert lmap("Car") == "vehicle"
    assert lmap("truck") == "vehicle"
    assert lmap("Person") == "person"  # built-in OIDv4 -> COCO
    assert lmap("Computer monitor") == "tv"
    assert lmap("zebra") == "zebra"
    assert LabelMap(builtin=False)("Person") == "Person"


@pytest.mark.parametrize("bad", ["Person", "=x", "x=", ""])
def test_parse_map_rejects_malformed_pairs(bad: str) -> None:
    with pytest.raises(ConfigError, match="SOURCE=TARGET"):
        parse_map([bad])


def test_parse_sweep() -> None:
    assert parse_sweep("0.3:0.7:0.05") == [0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6, 0.65, 0.7]
    assert parse_sweep("0.3:0.7:0.15") == [0.3, 0.45, 0.6]
    assert parse_sweep("0.5:0.5:0.1") == [0.5]
    for bad in ("0.3:0.7", "a:b:c", "0:0.5:0.1", "0.7:0.3:0.1", "0.3:0.7:0", "0.3:1.0:0.1"):
        with pytest.raises(ConfigError, match="--sweep"):
            parse_sweep(bad)


def test_matching_imports_neither_openvino_nor_opencv() -> None:
    """Scoring is plain Python; ``ei models eval`` loads the engine only to run the model."""
    code = ("import sys; import elastic_inference.core.evaluate, elastic_inference.core.truth, "
            "elastic_inference.cli.models_eval; "
            "assert not {'openvino', 'cv2'} & set(sys.modules), sorted(sys.modules)")
    subprocess.run([sys.executable, "-c", code], check=True)
