"""The ``Detector`` interface workers program against, and the factory that builds one.

Workers depend on this Protocol only, so tests can pass a fake detector and a different runtime
could be slotted in. The OpenVINO implementation is imported lazily inside :func:`load_detector`
so importing this module never imports openvino.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from ..core.result import Detection

Image = npt.NDArray[np.uint8]


@runtime_checkable
class Detector(Protocol):
    """Runs one model on batches of BGR uint8 images of any size.

    ``model`` is the registry name and ``device`` the device actually executing (both go into
    every result); ``input_size`` is the network's ``(w, h)`` so the worker can decode JPEGs at a
    reduced size close to it.
    """

    model: str
    device: str
    input_size: tuple[int, int]

    def infer(self, images: Sequence[Image]) -> list[list[Detection]]:
        """Detections per image, in the order of ``images``; boxes normalised to each image."""
        ...

    def close(self) -> None:
        """Release the compiled model and its requests (waits for in-flight ones)."""
        ...


def load_detector(
    infer_type: str,
    model_dir: Path,
    device: str = "CPU",
    model: str | None = None,
    threshold: float | None = None,
) -> Detector:
    """Resolve the model for ``infer_type`` (or the ``model`` override) and compile it.

    Raises :class:`~elastic_inference.core.errors.ModelError` for an unknown type or model, a
    missing model file, or an unavailable device.
    """
    from .models import resolve
    from .openvino_runtime import OpenVINODetector

    spec, label_filter = resolve(infer_type, model, model_dir, threshold)
    return OpenVINODetector(spec, Path(model_dir), device=device, label_filter=label_filter)
