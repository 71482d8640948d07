"""Inference: Detector interface, model registry, post-processors, annotation.

The only package that imports openvino, and only lazily (``openvino_runtime``), so importing
``elastic_inference.engine`` or ``engine.annotate`` is cheap and works without openvino.
"""

from .detector import Detector
from .factory import load_detector
from .models import BUILTIN_MODELS, INFER_TYPES, ModelSpec, resolve

__all__ = ["BUILTIN_MODELS", "INFER_TYPES", "Detector", "ModelSpec", "load_detector", "resolve"]
