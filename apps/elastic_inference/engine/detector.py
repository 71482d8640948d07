"""The ``Detector`` interface workers program against (the factory is :mod:`.factory`).

Workers depend on this Protocol only, so tests can pass a fake detector and a different runtime
could be slotted in. This module imports nothing of the engine, so implementations import it
without a cycle.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from ..core.result import Detection

Image = npt.NDArray[np.uint8]


Prepared = npt.NDArray[np.uint8]
#: A finished frame: the caller's tag and its detections.
Done = tuple[int, list[Detection]]


@runtime_checkable
class Detector(Protocol):
    """Runs one model on BGR uint8 images of any size.

    ``model`` is the registry name and ``device`` the device actually executing (both go into
    every result); ``precision`` is what the device really computes in (``bf16`` for an FP32
    model on a CPU with AVX-512 BF16, unless ``f32`` is asked for); ``input_size`` is the
    network's ``(w, h)`` so the worker can decode JPEGs at a reduced size close to it.

    Two ways to use it. ``infer(images)`` is the simple batch call. The worker streams instead,
    so decoding, inference and publishing overlap: ``prepare`` (thread-safe; run it in the decode
    pool) turns an image into the model's input tensor, ``submit`` starts one inference and
    returns whatever finished meanwhile, ``flush`` waits for the rest. Tags are the caller's.
    """

    model: str
    device: str
    precision: str
    input_size: tuple[int, int]
    batch: int

    def prepare(self, image: Image) -> Prepared:
        """Resize ``image`` into the model's input tensor (host side, no other copy)."""
        ...

    def submit(self, prepared: Prepared, tag: int) -> list[Done]:
        """Start inference of one prepared tensor (or stage it until ``batch`` are); may block
        until the device has room."""
        ...

    def flush(self) -> list[Done]:
        """Wait for every submitted tensor and return the detections not yet returned."""
        ...

    def infer(self, images: Sequence[Image]) -> list[list[Detection]]:
        """Detections per image, in the order of ``images``; boxes normalised to each image."""
        ...

    def close(self) -> None:
        """Release the compiled model and its requests (waits for in-flight ones)."""
        ...


def infer_all(detector: Detector, images: Sequence[Image]) -> list[list[Detection]]:
    """``Detector.infer`` in terms of ``prepare``/``submit``/``flush``, for implementations."""
    results: list[list[Detection]] = [[] for _ in images]
    done: list[Done] = []
    for index, image in enumerate(images):
        done += detector.submit(detector.prepare(image), index)
    done += detector.flush()
    for index, detections in done:
        results[index] = detections
    return results
