"""Reading truth files: the project's JSON, COCO annotations, and clear errors (core.truth)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from elastic_inference.core.errors import TruthError
from elastic_inference.core.evaluate import Counts, Scored, evaluate
from elastic_inference.core.truth import TruthBox, load_truth

REPO = Path(__file__).resolve().parents[3]


def write(tmp_path: Path, data: Any, name: str = "truth.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(data) if not isinstance(data, str) else data)
    return path


OWN = {"video": "v.avi", "size": [640, 480], "labels": ["person", "car"],
       "notes": ["drawn by hand"],
       "frames": {"0": [{"label": "person", "box": [10, 20, 50, 120]},
                        {"label": "person", "box": [300, 20, 330, 80], "ignore": True}],
                  "15": []}}


def test_own_format(tmp_path: Path) -> None:
    truth = load_truth(write(tmp_path, OWN))
    assert truth.video == "v.avi"
    assert truth.size == (640, 480)
    assert truth.label_set() == ("person", "car")
    assert truth.frames[0] == (TruthBox("person", (10.0, 20.0, 50.0, 120.0)),
                               TruthBox("person", (300.0, 20.0, 330.0, 80.0), ignore=True))
    assert truth.frames[15] == ()


def test_labels_default_to_those_boxed(tmp_path: Path) -> None:
    data = {"frames": {"3": [{"label": "truck", "box": [0, 0, 5, 5]},
                             {"label": "car", "box": [0, 0, 5, 5]}]}}
    assert load_truth(write(tmp_path, data)).label_set() == ("car", "truck")


COCO = {
    "images": [{"id": 7, "file_name": "vtest_000020.jpg", "width": 640, "height": 480},
               {"id": 8, "file_name": "clip/frame.png", "frame_index": 40,
                "width": 640, "height": 480},
               {"id": 9, "file_name": "000060.jpg", "width": 640, "height": 480}],
    "annotations": [
        {"id": 1, "image_id": 7, "category_id": 1, "bbox": [10, 20, 40, 100], "iscrowd": 0},
        {"id": 2, "image_id": 7, "category_id": 3, "bbox": [100, 10, 70, 50]},
        {"id": 3, "image_id": 8, "category_id": 1, "bbox": [0, 0, 200, 100], "iscrowd": 1},
    ],
    "categories": [{"id": 1, "name": "person"}, {"id": 3, "name": "car"}],
}


def test_coco_import(tmp_path: Path) -> None:
    truth = load_truth(write(tmp_path, COCO))
    assert sorted(truth.frames) == [20, 40, 60]
    # bbox [x, y, w, h] becomes [x1, y1, x2, y2]; iscrowd regions count neither way.
    assert truth.frames[20] == (TruthBox("person", (10.0, 20.0, 50.0, 120.0)),
                                TruthBox("car", (100.0, 10.0, 170.0, 60.0)))
    assert truth.frames[40] == (TruthBox("person", (0.0, 0.0, 200.0, 100.0), ignore=True),)
    assert truth.frames[60] == ()  # an image without annotations: nothing there
    assert truth.size == (640, 480)
    assert truth.label_set() == ("person", "car")


def test_coco_and_own_format_score_the_same(tmp_path: Path) -> None:
    """The same boxes written both ways give the same figures."""
    coco = load_truth(write(tmp_path, COCO, "coco.json"))
    own = load_truth(write(tmp_path, {"frames": {
        "20": [{"label": "person", "box": [10, 20, 50, 120]},
               {"label": "car", "box": [100, 10, 170, 60]}],
        "40": [{"label": "person", "box": [0, 0, 200, 100], "ignore": True}],
        "60": []}}, "own.json"))
    found = {20: [Scored("Person", 0.8, (12.0, 22.0, 50.0, 118.0))],
             40: [Scored("Person", 0.8, (10.0, 10.0, 60.0, 90.0))],
             60: [Scored("Car", 0.7, (0.0, 0.0, 30.0, 30.0))]}
    a, b = evaluate(coco, found), evaluate(own, found)
    assert a.labels == b.labels == {"person": Counts(1, 0, 0), "car": Counts(0, 1, 1)}


@pytest.mark.parametrize(("data", "message"), [
    ("{not json", "not valid JSON"),
    ([], "must hold a JSON object"),
    ({"boxes": {}}, "neither"),
    ({"frames": {}}, "non-empty object"),
    ({"frames": {"0": []}, "fps": 25}, r"unknown keys \['fps'\]"),
    ({"frames": {"first": []}}, "frame key 'first'"),
    ({"frames": {"0": {"label": "person"}}}, "frame 0: expected a list"),
    ({"frames": {"0": [{"label": "person", "box": [1, 2, 3]}]}}, "frame 0, box 0: box must be"),
    ({"frames": {"5": [{"label": "person", "box": [0, 0, 9, 9]},
                       {"label": "", "box": [0, 0, 9, 9]}]}}, "frame 5, box 1: label"),
    ({"frames": {"0": [{"label": "person", "box": [50, 0, 10, 9]}]}}, "is empty"),
    ({"frames": {"0": [{"label": "person", "box": [0, 0, 9, 9], "ignored": True}]}},
     r"unknown keys \['ignored'\]"),
    ({"frames": {"0": [{"label": "person", "box": [0, 0, 9, 9], "ignore": "yes"}]}},
     "ignore must be true or false"),
    ({"frames": {"0": []}, "size": [640]}, "size must be"),
])
def test_bad_own_files_name_the_problem(tmp_path: Path, data: Any, message: str) -> None:
    path = write(tmp_path, data)
    with pytest.raises(TruthError, match=message) as err:
        load_truth(path)
    assert str(path) in str(err.value)


def coco_with(**change: Any) -> dict[str, Any]:
    return {**COCO, **change}


@pytest.mark.parametrize(("data", "message"), [
    (coco_with(images=[{"id": 1, "file_name": "still.jpg"}]), r"images\[0\]: no frame index"),
    (coco_with(images=[{"id": 1, "frame_index": -1}]), "frame_index must be"),
    (coco_with(images=[{"id": 1, "frame": 3}, {"id": 2, "frame": 3}]), "frame 3 appears twice"),
    (coco_with(annotations=[{"image_id": 99, "category_id": 1, "bbox": [0, 0, 1, 1]}]),
     r"annotations\[0\]: image_id 99 is not in images"),
    (coco_with(annotations=[{"image_id": 7, "category_id": 2, "bbox": [0, 0, 1, 1]}]),
     "category_id 2 is not in categories"),
    (coco_with(annotations=[{"image_id": 7, "category_id": 1, "bbox": [0, 0, 1]}]),
     r"bbox must be \[x, y, width, height\]"),
    (coco_with(annotations=[{"image_id": 7, "category_id": 1, "bbox": [0, 0, 0, 5]}]),
     "is empty"),
    (coco_with(images=[{"id": 1, "frame": 0, "width": 640, "height": 480},
                       {"id": 2, "frame": 1, "width": 320, "height": 240}], annotations=[]),
     "different sizes"),
    (coco_with(categories={"1": "person"}), "\"categories\" must be a list"),
])
def test_bad_coco_files_name_the_problem(tmp_path: Path, data: Any, message: str) -> None:
    with pytest.raises(TruthError, match=message):
        load_truth(write(tmp_path, data))


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(TruthError, match="cannot read truth file"):
        load_truth(tmp_path / "nope.json")


@pytest.mark.parametrize(("name", "frames", "size"), [
    ("vtest-truth.json", 40, (768, 576)), ("Megamind-truth.json", 20, (720, 528))])
def test_committed_truth_files_load(name: str, frames: int, size: tuple[int, int]) -> None:
    truth = load_truth(REPO / "tests" / "data" / name)
    assert len(truth.frames) == frames
    assert truth.size == size
    w, h = size
    for boxes in truth.frames.values():
        for b in boxes:
            assert 0 <= b.box[0] < b.box[2] <= w and 0 <= b.box[1] < b.box[3] <= h, b
