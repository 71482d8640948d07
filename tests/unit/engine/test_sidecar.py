"""The JSON sidecar of a user model: every key checked, errors name the key."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from elastic_inference.core.errors import ModelError
from elastic_inference.engine.layouts.base import LayoutOptions
from elastic_inference.engine.models import get_model


def spec_with(tmp_path: Path, side: dict[str, Any]) -> Any:
    (tmp_path / "det.onnx").write_bytes(b"onnx")
    (tmp_path / "det.json").write_text(json.dumps(side))
    return get_model("det", tmp_path)


def test_every_key_reaches_the_spec(tmp_path: Path) -> None:
    (tmp_path / "coco.txt").write_text("person\n\nbicycle\ncar\n")
    spec = spec_with(tmp_path, {
        "layout": "yolox", "labels": "coco.txt", "input_w": 416, "input_h": 320,
        "color": "BGR", "mean": [103.53, 116.28, 123.675], "scale": 57.6,
        "resize": "letterbox", "threshold": 0.35, "iou_threshold": 0.6, "max_detections": 50,
        "strides": [8, 16, 32, 64], "box_format": "xyxy", "box_units": "pixels",
        "score_activation": "sigmoid", "batch": 4, "cpu_share": 0.5})
    assert spec.postprocess == "yolox" and spec.labels == ("person", "bicycle", "car")
    assert (spec.input_w, spec.input_h, spec.color) == (416, 320, "BGR")
    assert spec.mean == (103.53, 116.28, 123.675) and spec.scale == 57.6
    assert spec.resize == "letterbox" and spec.threshold == 0.35 and spec.iou_threshold == 0.6
    assert spec.max_detections == 50 and spec.batch == 4 and spec.cpu_share == 0.5
    assert spec.options == LayoutOptions((8, 16, 32, 64), "xyxy", "pixels", "sigmoid")


def test_defaults_leave_layout_and_input_to_the_model(tmp_path: Path) -> None:
    spec = spec_with(tmp_path, {})
    assert spec.postprocess == "auto" and spec.resize == "stretch" and spec.threshold == 0.5
    assert spec.color is None and spec.mean is None and spec.scale is None and spec.batch == 1
    assert spec.cpu_share == 1.0
    assert spec.options == LayoutOptions()
    assert spec_with(tmp_path, {"postprocess": "omz-ssd"}).postprocess == "omz-ssd"  # old name


@pytest.mark.parametrize(("side", "message"), [
    ({"layuot": "yolov8"}, r'unknown key\(s\) "layuot".*known: file, layout'),
    ({"threshold": "0.5"}, r"'threshold' must be a number, not \"0.5\""),
    ({"threshold": 1.5}, r"'threshold' must be a number between 0 and 1"),
    ({"iou_threshold": 0}, r"'iou_threshold' must be a number between 0 and 1 \(1 included\)"),
    ({"input_w": 416.0}, r"'input_w' must be an integer >= 1, not 416.0"),
    ({"input_h": True}, r"'input_h' must be an integer >= 1, not true"),
    ({"batch": 0}, r"'batch' must be an integer >= 1, not 0"),
    ({"cpu_share": 0}, r"'cpu_share' must be a number between 0 and 1 \(1 included\), not 0"),
    ({"cpu_share": "half"}, r"'cpu_share' must be a number, not \"half\""),
    ({"color": "rgb"}, r"'color' must be one of \"RGB\", \"BGR\", not \"rgb\""),
    ({"mean": [0, 0]}, r"'mean' must be a number or a list of 3 numbers"),
    ({"scale": 0}, r"'scale' must be non-zero"),
    ({"resize": "crop"}, r"'resize' must be one of \"stretch\", \"letterbox\""),
    ({"layout": "yolo"}, r"'layout' must be one of \"auto\", .*\"yolov5\", not \"yolo\""),
    ({"labels": {"0": "a"}}, r"'labels' must be a list of strings or a labels file name"),
    ({"strides": [8, 0]}, r"'strides' must be a non-empty list of positive integers"),
    ({"anchors": {"num_layers": 1, "bogus": 2}},
     r"'anchors' must be an object with keys from .*; \['bogus'\] unknown"),
    ({"file": 3}, r"'file' must be a non-empty string, not 3"),
    ({"layout": "yolov5", "postprocess": "yolox"}, r'both "layout" and "postprocess"'),
])
def test_bad_sidecars_are_refused_naming_the_key(
        tmp_path: Path, side: dict[str, Any], message: str) -> None:
    with pytest.raises(ModelError, match=message):
        spec_with(tmp_path, side)


def test_missing_labels_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match=r"cannot read labels file .*nope\.txt"):
        spec_with(tmp_path, {"labels": "nope.txt"})
