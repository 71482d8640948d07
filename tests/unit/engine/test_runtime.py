"""Runtime helpers that need no model: device checks and the Detector protocol."""

from __future__ import annotations

import numpy as np
import pytest

from elastic_inference.core.errors import ModelError
from elastic_inference.engine.detector import Detector
from elastic_inference.engine.openvino_runtime import check_device, cpu_streams
from tests.fakes import FakeDetector


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


def test_a_cpu_share_below_one_sets_streams_of_one_thread_on_the_cpu_only() -> None:
    assert cpu_streams(0.5, "CPU", cpus=2) == {"NUM_STREAMS": "1", "INFERENCE_NUM_THREADS": "1"}
    assert cpu_streams(0.5, "CPU", cpus=8)["NUM_STREAMS"] == "4"
    assert cpu_streams(0.5, "CPU", cpus=3)["NUM_STREAMS"] == "2"  # rounds half up
    assert cpu_streams(0.1, "CPU", cpus=2)["NUM_STREAMS"] == "1"  # never none
    assert cpu_streams(1.0, "CPU", cpus=8) == {}  # OpenVINO's own THROUGHPUT choice
    assert cpu_streams(0.5, "GPU", cpus=8) == {}
    assert cpu_streams(0.5, "AUTO", cpus=8) == {}


def test_fake_detector_satisfies_protocol_and_infer_all_keeps_order() -> None:
    det: Detector = FakeDetector()
    assert isinstance(det, Detector)
    images = [np.zeros((4, w, 3), np.uint8) for w in (10, 20, 30)]
    widths = [dets[0].box[2] for dets in det.infer(images)]
    assert widths == [0.1, 0.2, 0.3]
