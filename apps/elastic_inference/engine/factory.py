"""Builds the detector a worker runs: the model resolved for a type, compiled by OpenVINO.

Apart from the :class:`.detector.Detector` interface, which the OpenVINO implementation
imports: the factory imports the implementation, the interface imports neither. Importing
this imports no openvino (``openvino_runtime`` does that when a model is compiled).
"""

from __future__ import annotations

from pathlib import Path

from .detector import Detector
from .models import resolve
from .openvino_runtime import OpenVINODetector


def load_detector(
    infer_type: str,
    model_dir: Path,
    device: str = "CPU",
    model: str | None = None,
    threshold: float | None = None,
    precision: str = "",
) -> Detector:
    """Resolve the model for ``infer_type`` (or the ``model`` override) and compile it.

    Raises :class:`~elastic_inference.core.errors.ModelError` for an unknown type or model, a
    missing model file, or an unavailable device.
    """
    spec, label_filter = resolve(infer_type, model, model_dir, threshold)
    return OpenVINODetector(spec, Path(model_dir), device=device, label_filter=label_filter,
                            precision=precision)
