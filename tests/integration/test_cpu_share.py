"""A model's ``cpu_share``: how many OpenVINO streams (of one thread) it compiles to on the CPU."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

from elastic_inference.engine.models import BUILTIN_MODELS
from elastic_inference.engine.openvino_runtime import OpenVINODetector


def _threads(det: OpenVINODetector) -> int:
    return int(det._compiled.get_property("INFERENCE_NUM_THREADS"))


def test_blazeface_runs_on_half_the_cpus_and_a_share_of_one_on_all(model_dir: Path) -> None:
    cpus = len(os.sched_getaffinity(0))
    spec = BUILTIN_MODELS["blazeface"]
    assert spec.cpu_share == 0.5
    half = OpenVINODetector(spec, model_dir)
    whole = OpenVINODetector(replace(spec, cpu_share=1.0), model_dir)
    try:
        assert half.streams == max(1, int(cpus * 0.5 + 0.5)) == _threads(half)
        assert half._single.num_requests == half.num_requests == half.streams + 1
        # OpenVINO's THROUGHPUT choice: at least as many streams and threads.
        assert whole.streams >= half.streams and _threads(whole) >= _threads(half)
        if cpus >= 2:
            assert _threads(whole) > _threads(half)
    finally:
        half.close()
        whole.close()
