"""History helpers without Redis: entry times, label filtering, per-bucket counts."""

from __future__ import annotations

from typing import Any

from elastic_inference.core.history import LabelBuckets, entry_seconds, only_label


def test_entry_seconds() -> None:
    assert entry_seconds("1718000000123-4") == 1718000000.123


def test_only_label_restricts_detections_and_drops_results_without_it() -> None:
    result: dict[str, Any] = {"v": 1, "detections": [
        {"label": "car", "score": 0.9}, {"label": "person"}, {"label": "car", "score": 0.5}]}
    assert only_label(result, None) is result
    kept = only_label(result, "car")
    assert kept is not None and [d.get("score") for d in kept["detections"]] == [0.9, 0.5]
    assert len(result["detections"]) == 3  # the input is left as it was
    assert only_label(result, "bus") is None


def test_buckets_keep_the_most_in_view_per_result_not_a_sum() -> None:
    b = LabelBuckets(since=100.0, until=130.0, step=10.0)
    b.add(100.0, ["car", "car", "person"])
    b.add(105.0, ["car"])                      # fewer cars in a later frame: max stays 2
    b.add(109.999, ["person", "person", "person"])
    b.add(125.0, [])                           # a frame with nothing: the bucket exists
    b.add(130.0, ["car"])                      # t == until belongs to the last bucket
    assert b.series() == {"car": [[100.0, 2], [120.0, 1]],
                          "person": [[100.0, 3], [120.0, 0]]}  # 110..120 had no result


def test_buckets_clamp_entries_just_outside_the_range() -> None:
    b = LabelBuckets(since=100.0, until=100.0, step=5.0)  # an empty range is one bucket
    b.add(99.9995, ["face"])  # ms rounding of the range start
    b.add(100.0004, ["face", "face"])
    assert b.series() == {"face": [[100.0, 2]]}
