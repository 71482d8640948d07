"""The TensorFlow.js -> OpenVINO converter on tiny hand-written graph models.

NanoDet's own conversion is checked by hash in test_models.py; these pin down the details it
depends on, with graphs small enough to know every output value.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import openvino as ov
import pytest

from elastic_inference.core.errors import FetchError
from elastic_inference.engine.tfjs import convert_to_ir, read_weights

pytestmark = pytest.mark.integration


def _node(name: str, op: str, inputs: list[str], **attr: Any) -> dict[str, Any]:
    return {"name": name, "op": op, "input": inputs, "attr": attr}


def _model(weights: list[dict[str, Any]]) -> bytes:
    """x [1, 2] -> concat(x * w, x, axis) [1, 4]: w is FP16-quantized, axis a scalar int32."""
    f32 = {"type": "DT_FLOAT"}
    nodes = [
        _node("x", "Placeholder", [], dtype=f32,
              shape={"shape": {"dim": [{"size": "1"}, {"size": "2"}]}}),
        _node("w", "Const", [], dtype=f32),
        _node("axis", "Const", [], dtype={"type": "DT_INT32"}),
        _node("mul", "Mul", ["x", "w"], T=f32),
        _node("out", "ConcatV2", ["mul", "x", "axis"], T=f32, N={"i": "2"},
              Tidx={"type": "DT_INT32"}),
    ]
    return json.dumps({"format": "graph-model", "modelTopology": {"node": nodes},
                       "weightsManifest": [{"paths": ["w.bin"], "weights": weights}]}).encode()


MANIFEST: list[dict[str, Any]] = [
    {"name": "w", "shape": [2], "dtype": "float32",
     "quantization": {"dtype": "float16", "original_dtype": "float32"}},
    {"name": "axis", "shape": [], "dtype": "int32"},
]
WEIGHTS = np.asarray([2.0, -0.5], np.float16).tobytes() + np.int32(1).tobytes()


def test_weights_and_a_scalar_axis_survive_conversion(tmp_path: Path) -> None:
    xml = tmp_path / "tiny.xml"
    convert_to_ir(_model(MANIFEST), [WEIGHTS], xml, source="test")
    compiled = ov.Core().compile_model(str(xml), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    got = compiled(np.asarray([[3.0, 4.0]], np.float32))[0]
    # A scalar written to tensor_content would be read as axis 0: shape [2, 2].
    np.testing.assert_allclose(got, [[6.0, -2.0, 3.0, 4.0]])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny.bin", "tiny.xml"]
    assert "<source value=\"test\"" in xml.read_text()


def test_bad_inputs_are_fetch_errors(tmp_path: Path) -> None:
    with pytest.raises(FetchError, match="end early"):
        read_weights(MANIFEST, WEIGHTS[:-1])
    with pytest.raises(FetchError, match="covers 8 bytes, the file has 9"):
        read_weights(MANIFEST, WEIGHTS + b"\0")
    affine = [{"name": "q", "shape": [3], "dtype": "float32",
               "quantization": {"dtype": "uint8", "scale": 0.5, "min": -1.0}}]
    np.testing.assert_allclose(read_weights(affine, bytes([0, 2, 255]))["q"], [-1, 0, 126.5])
    with pytest.raises(FetchError, match="SHA-256"):
        convert_to_ir(_model(MANIFEST), [WEIGHTS], tmp_path / "x.xml", source="test",
                      expected_bin_sha256="0" * 64)
    assert list(tmp_path.iterdir()) == []  # nothing left behind
    with pytest.raises(FetchError, match=r"not a TensorFlow\.js graph model"):
        convert_to_ir(b'{"weightsManifest": []}', [], tmp_path / "y.xml", source="test")
