"""Runtime helpers that need no model: device checks and the Detector protocol."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest

from elastic_inference.core.errors import ModelError
from elastic_inference.core.result import Detection
from elastic_inference.engine.detector import Detector
from elastic_inference.engine.openvino_runtime import check_device


def test_check_device() -> None:
    assert check_device("cpu", ["CPU"]) == "CPU"
    assert check_device("AUTO", ["CPU"]) == "AUTO"
    assert check_device("AUTO:GPU,CPU", ["CPU"]) == "AUTO:GPU,CPU"
    assert check_device("GPU", ["CPU", "GPU.0", "GPU.1"]) == "GPU"
    assert check_device("GPU.1", ["CPU", "GPU.0", "GPU.1"]) == "GPU.1"
    with pytest.raises(ModelError, match=r"'NPU' is not available.*available: CPU"):
        check_device("NPU", ["CPU"])
    with pytest.raises(ModelError):
        check_device("", ["CPU"])


class FakeDetector:
    model = "fake"
    device = "CPU"
    input_size = (64, 64)

    def infer(self, images: Sequence[np.ndarray]) -> list[list[Detection]]:
        return [[Detection("x", 1.0, (0.0, 0.0, 1.0, 1.0))] for _ in images]

    def close(self) -> None:
        pass


def test_fake_detector_satisfies_protocol() -> None:
    det: Detector = FakeDetector()
    assert isinstance(det, Detector)
    assert len(det.infer([np.zeros((4, 4, 3), np.uint8)] * 3)) == 3
