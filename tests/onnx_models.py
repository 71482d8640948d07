"""Small ONNX detectors built with the ``onnx`` package, with outputs a test controls.

No YOLO, YOLOX or DETR weights ship in any package that can be installed here, so the
layout tests use models whose outputs are constants plus one term that depends on the
image: ``gain * mean(channel 0 of the network input)`` added at chosen positions. That
term makes the detection appear for a frame of one colour and not for another, which checks
the colour order and normalisation the runtime folds into the compiled model end to end.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


@dataclass
class Head:
    """One output: ``base`` values, plus ``gain * signal`` at the ``gain`` positions."""

    name: str
    base: np.ndarray
    gain: dict[tuple[int, ...], float] = field(default_factory=dict)


def write_detector(path: Path, heads: Sequence[Head],
                   input_shape: Sequence[int | str] = (1, 3, 64, 64)) -> Path:
    """Save an ONNX model with one NCHW float input ``images`` and the given outputs."""
    nodes = [
        helper.make_node("Slice", ["images", "c0", "c1", "axis1"], ["channel0"]),
        helper.make_node("ReduceMean", ["channel0"], ["signal"], keepdims=0),
    ]
    inits = [numpy_helper.from_array(np.array([v], np.int64), n)
             for n, v in (("c0", 0), ("c1", 1), ("axis1", 1))]
    outputs = []
    for head in heads:
        base = head.base.astype(np.float32)
        gain = np.zeros_like(base)
        for index, value in head.gain.items():
            gain[index] = value
        inits += [numpy_helper.from_array(base, f"{head.name}_base"),
                  numpy_helper.from_array(gain, f"{head.name}_gain")]
        nodes += [
            helper.make_node("Mul", [f"{head.name}_gain", "signal"], [f"{head.name}_term"]),
            helper.make_node("Add", [f"{head.name}_base", f"{head.name}_term"], [head.name]),
        ]
        outputs.append(helper.make_tensor_value_info(head.name, TensorProto.FLOAT, base.shape))
    graph = helper.make_graph(
        nodes, "detector",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, list(input_shape))],
        outputs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path
