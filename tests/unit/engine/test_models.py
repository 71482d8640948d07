"""Model registry: type -> model + label filter, overrides, user models, clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from elastic_inference.core.errors import ModelError
from elastic_inference.engine.layouts.base import Output
from elastic_inference.engine.layouts.registry import select
from elastic_inference.engine.models import (
    BUILTIN_MODELS,
    COCO80_LABELS,
    INFER_TYPES,
    OIDV4_LABELS,
    get_model,
    load_user_model,
    resolve,
)


def test_builtin_types() -> None:
    spec, keep = resolve("face")
    assert spec.name == "blazeface" and keep == frozenset({"face"})
    assert spec.threshold == 0.6
    spec, keep = resolve("people")
    assert spec.name == "nanodet-g-416" and keep == frozenset({"person"})
    spec, keep = resolve("car")
    # The van in vtest.avi is a COCO truck; motorcycles are vehicles on the road too.
    assert spec.name == "nanodet-g-416"
    assert keep == frozenset({"car", "truck", "bus", "motorcycle"})
    assert keep <= set(COCO80_LABELS)
    spec, keep = resolve("object")
    assert spec.name == "nanodet-g-416" and keep is None and len(spec.labels) == 80
    assert set(INFER_TYPES) == {"face", "people", "car", "object"}


def test_types_with_the_lighter_ssd() -> None:
    # The SSD stays selectable per worker; the types' labels match its spelling.
    spec, keep = resolve("people", "ssd-mobilenetv2-oidv4")
    assert spec.name == "ssd-mobilenetv2-oidv4" and keep == frozenset({"Person"})
    spec, keep = resolve("car", "ssd-mobilenetv2-oidv4")
    assert keep == frozenset({"Car", "Vehicle"}) and keep <= set(OIDV4_LABELS)
    assert resolve("object", "ssd-mobilenetv2-oidv4")[1] is None


def test_thresholds_per_type() -> None:
    # The SSD's vehicles score lower than its people (doc/models.md): car has its own.
    assert resolve("people", "ssd-mobilenetv2-oidv4")[0].threshold == 0.4
    assert resolve("car", "ssd-mobilenetv2-oidv4")[0].threshold == 0.3
    assert resolve("car", "ssd-mobilenetv2-oidv4-int8")[0].threshold == 0.3
    assert resolve("car", "ssd-mobilenetv2-oidv4", threshold=0.6)[0].threshold == 0.6
    assert resolve("people")[0].threshold == 0.45  # NanoDet
    assert resolve("car")[0].threshold == resolve("object")[0].threshold == 0.4


def test_nanodet_spec() -> None:
    spec = BUILTIN_MODELS["nanodet-g-416"]
    assert spec.postprocess == "nanodet" and spec.file == "nanodet-g-416.xml"
    assert (spec.input_w, spec.input_h, spec.color) == (416, 416, "BGR")
    assert spec.mean == (103.53, 116.28, 123.675) and spec.scale == (57.375, 57.12, 58.395)
    assert spec.extra_files == ("nanodet-g-416.bin",)


def test_oidv4_labels() -> None:
    assert len(OIDV4_LABELS) == 24 and OIDV4_LABELS[0] == "???"
    assert BUILTIN_MODELS["ssd-mobilenetv2-oidv4"].ignore_classes == (0,)


def test_override_model_and_threshold() -> None:
    spec, keep = resolve("people", "blazepose-detector", threshold=0.7)
    assert spec.name == "blazepose-detector" and keep == frozenset({"person"})
    assert spec.threshold == 0.7
    assert BUILTIN_MODELS["blazepose-detector"].threshold == 0.6  # registry untouched
    spec, _ = resolve("face", "blazeface-full")
    assert spec.input_w == 192
    with pytest.raises(ModelError, match="threshold"):
        resolve("face", threshold=1.5)


def test_unknown_names_raise_model_error() -> None:
    with pytest.raises(ModelError, match="'spaceship'"):
        resolve("spaceship")
    with pytest.raises(ModelError, match="'yolo-v99'"):
        resolve("face", "yolo-v99")
    with pytest.raises(ModelError, match="no label for inference type 'car'"):
        resolve("car", "blazeface")


def test_user_model_in_model_dir(tmp_path: Path) -> None:
    (tmp_path / "person-detection-retail-0013.xml").write_text("<net/>")
    (tmp_path / "person-detection-retail-0013.labels").write_text("background\nperson\n")
    spec, keep = resolve("people", "person-detection-retail-0013", tmp_path)
    # Without a sidecar the layout is recognised, and its input defaults used, at load time.
    assert spec.postprocess == "auto" and not spec.builtin
    assert spec.labels == ("background", "person") and keep == frozenset({"person"})
    assert spec.color is None and spec.mean is None and spec.scale is None
    assert spec.path(tmp_path) == (tmp_path / "person-detection-retail-0013.xml").resolve()


def test_user_model_by_path_with_sidecar(tmp_path: Path) -> None:
    model = tmp_path / "sub" / "helmets.onnx"
    model.parent.mkdir()
    model.write_bytes(b"onnx")
    (model.parent / "helmets.json").write_text(
        json.dumps({"labels": ["bg", "helmet"], "threshold": 0.3, "color": "RGB"})
    )
    spec, keep = resolve("helmet", str(model))  # a custom type is fine with an explicit model
    assert spec.name == "helmets" and keep is None
    assert spec.threshold == 0.3 and spec.color == "RGB" and spec.labels == ("bg", "helmet")
    # A known type whose labels the user model lacks keeps everything (with a warning).
    _, keep = resolve("car", str(model))
    assert keep is None


def test_user_model_json_only_and_bad_sidecar(tmp_path: Path) -> None:
    (tmp_path / "m.xml").write_text("<net/>")
    (tmp_path / "m.json").write_text(json.dumps({"file": "m.xml", "labels": ["a"]}))
    assert load_user_model(str(tmp_path / "m.json")).file.endswith("m.xml")
    (tmp_path / "m.json").write_text(json.dumps({"labelz": []}))
    with pytest.raises(ModelError, match="labelz"):
        get_model("m", tmp_path)
    (tmp_path / "m.json").write_text(json.dumps({"postprocess": "yolo"}))
    with pytest.raises(ModelError, match="yolo"):
        get_model("m", tmp_path)
    (tmp_path / "m.json").write_text("{not json")
    with pytest.raises(ModelError, match="sidecar"):
        get_model("m", tmp_path)


def test_user_mediapipe_model_from_sidecar(tmp_path: Path) -> None:
    (tmp_path / "tiny.tflite").write_bytes(b"tfl3")
    side = {
        "postprocess": "mediapipe-ssd",
        "labels": ["thing"],
        "anchors": {
            "num_layers": 1,
            "min_scale": 0.2,
            "max_scale": 0.9,
            "input_w": 64,
            "input_h": 64,
            "strides": [8],
            "interpolated_scale_aspect_ratio": 0.0,
            "fixed_anchor_size": True,
        },
        "decode": {"order": "xywh", "x_scale": 64, "y_scale": 64, "w_scale": 64, "h_scale": 64},
        "mean": 127.5,
        "scale": 127.5,
    }
    (tmp_path / "tiny.json").write_text(json.dumps(side))
    spec = get_model("tiny", tmp_path)
    assert spec.anchors is not None and spec.anchors.strides == (8,)
    assert spec.color is None and spec.mean == 127.5  # colour: the layout's default, RGB
    outputs = [Output(0, (1, 64, 16)), Output(1, (1, 64, 1))]
    layout, decoder = select(outputs, spec.layout_context((64, 64)), spec.postprocess)
    assert layout.name == "mediapipe-ssd" and decoder.outputs == (0, 1)
    assert layout.input_defaults.color == "RGB"


def test_every_builtin_but_nanodet_has_an_int8_variant() -> None:
    fp32 = {n: s for n, s in BUILTIN_MODELS.items() if not s.quantized_from and s.int8}
    assert set(fp32) == {
        "blazeface", "blazeface-full", "ssd-mobilenetv2-oidv4", "blazepose-detector"
    }
    # NanoDet has none yet (doc/models.md, "INT8 variants"): asking for one is an unknown model.
    assert not BUILTIN_MODELS["nanodet-g-416"].int8
    assert "nanodet-g-416-int8" not in BUILTIN_MODELS
    for name, spec in fp32.items():
        int8 = BUILTIN_MODELS[f"{name}-int8"]
        assert spec.precision == "FP32" and int8.precision == "INT8"
        assert int8.quantized_from == name and int8.builtin
        assert int8.file == f"{name}-int8.xml" and int8.extra_files == ()
        # Same decoding and input: only the weights' precision differs.
        same = ("postprocess", "labels", "threshold", "iou_threshold", "input_w", "input_h",
                "anchors", "decode", "ignore_classes", "color", "mean", "scale",
                "type_thresholds")
        assert all(getattr(int8, f) == getattr(spec, f) for f in same), name
    assert len(BUILTIN_MODELS) == 2 * len(fp32) + 1  # no int8-of-int8, none of NanoDet


def test_int8_variant_selectable_by_name(tmp_path: Path) -> None:
    spec, keep = resolve("people", "ssd-mobilenetv2-oidv4-int8")  # no dir: nothing checked
    assert spec.name == "ssd-mobilenetv2-oidv4-int8" and keep == frozenset({"Person"})
    (tmp_path / "blazeface-int8.xml").write_text("<net/>")
    (tmp_path / "blazeface-int8.bin").write_bytes(b"\0")
    spec, keep = resolve("face", "blazeface-int8", tmp_path, threshold=0.7)
    assert spec.file == "blazeface-int8.xml" and spec.threshold == 0.7
    assert spec.path(tmp_path) == tmp_path / "blazeface-int8.xml"
    with pytest.raises(ModelError, match="no label for inference type 'car'"):
        resolve("car", "blazeface-int8")


def test_missing_int8_file_says_run_quantize(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match=r"ei models quantize -d .* -m ssd-mobilenetv2-oidv4-int8"):
        resolve("people", "ssd-mobilenetv2-oidv4-int8", tmp_path)
    (tmp_path / "blazeface-int8.xml").write_text("<net/>")  # .bin missing: still not usable
    with pytest.raises(ModelError, match=r"made from 'blazeface'.*quantize"):
        get_model("blazeface-int8", tmp_path)
    # FP32 built-ins are not checked here (the runtime says to fetch them).
    assert get_model("blazeface", tmp_path).name == "blazeface"


def test_sidecar_cannot_claim_to_be_quantized(tmp_path: Path) -> None:
    (tmp_path / "m.xml").write_text("<net/>")
    (tmp_path / "m.json").write_text(json.dumps({"quantized_from": "blazeface"}))
    with pytest.raises(ModelError, match="quantized_from"):
        get_model("m", tmp_path)


def test_type_thresholds_from_a_sidecar(tmp_path: Path) -> None:
    (tmp_path / "m.onnx").write_bytes(b"onnx")
    (tmp_path / "m.json").write_text(json.dumps({"threshold": 0.5,
                                                 "type_thresholds": {"people": 0.25}}))
    assert get_model("m", tmp_path).type_thresholds == (("people", 0.25),)
    assert resolve("people", "m", tmp_path)[0].threshold == 0.25
    assert resolve("car", "m", tmp_path)[0].threshold == 0.5
    for bad in ({"people": 1.5}, [0.3], {}):
        (tmp_path / "m.json").write_text(json.dumps({"type_thresholds": bad}))
        with pytest.raises(ModelError, match="'type_thresholds' must be"):
            get_model("m", tmp_path)
