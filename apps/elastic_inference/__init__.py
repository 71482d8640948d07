"""Elastic Inference: detection on many live video streams, scaled with demand."""

__version__ = "0.1.0"
