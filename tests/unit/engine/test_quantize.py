"""INT8 quantization helpers that need no model run (the real thing: integration tests)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from elastic_inference.core.errors import ModelError
from elastic_inference.engine.quantize import (
    RECIPE,
    _is_current,
    int8_pair,
    quantize,
    read_provenance,
)


def test_int8_pair_accepts_either_name() -> None:
    fp32, int8 = int8_pair("ssd-mobilenetv2-oidv4")
    assert (fp32.name, int8.name) == ("ssd-mobilenetv2-oidv4", "ssd-mobilenetv2-oidv4-int8")
    assert int8_pair("blazeface-int8")[0].name == "blazeface"
    for bad in ("yolo", "blazeface-int8-int8", "my-model"):
        with pytest.raises(ModelError, match="not a built-in FP32 model"):
            int8_pair(bad)
    with pytest.raises(ModelError, match="'nanodet-g-416': has no INT8 variant"):
        int8_pair("nanodet-g-416")


def _ir(path: Path, sha: str, recipe: str = RECIPE) -> None:
    path.write_text(
        "<?xml version='1.0'?>\n<net name='x' version='11'><layers/><edges/><rt_info>"
        f"<elastic_inference><source_sha256 value='{sha}'/><recipe value='{recipe}'/>"
        "</elastic_inference></rt_info></net>"
    )
    path.with_suffix(".bin").write_bytes(b"\0" * 8)


def test_provenance_decides_whether_to_remake(tmp_path: Path) -> None:
    xml = tmp_path / "blazeface-int8.xml"
    assert not _is_current(xml, "abc") and read_provenance(xml) == {}
    _ir(xml, "abc")
    assert read_provenance(xml) == {"source_sha256": "abc", "recipe": RECIPE}
    assert _is_current(xml, "abc")
    assert not _is_current(xml, "abd")  # another source file
    _ir(xml, "abc", recipe="0:old")
    assert not _is_current(xml, "abc")  # another recipe
    _ir(xml, "abc")
    xml.with_suffix(".bin").unlink()
    assert not _is_current(xml, "abc")
    xml.write_text("<net")  # unreadable: remade, not an error
    assert read_provenance(xml) == {}


def test_quantize_errors_before_any_work(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ModelError, match="ei models fetch"):
        quantize("blazeface", tmp_path, tmp_path)
    with pytest.raises(ModelError, match="at least one frame"):
        quantize("blazeface", tmp_path, tmp_path, frames=0)
    (tmp_path / "face_detection_short_range.tflite").write_bytes(b"not a model")
    monkeypatch.setitem(sys.modules, "nncf", None)  # as if not installed
    with pytest.raises(ModelError, match=r"elastic-inference\[quantize\]"):
        quantize("blazeface", tmp_path, tmp_path)
