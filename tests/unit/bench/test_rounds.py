"""The bench's rounds: limits and worker back to back, the median round reported."""

from __future__ import annotations

from dataclasses import replace

import pytest

from elastic_inference.bench.harness import Drain
from elastic_inference.bench.probes import Rate
from elastic_inference.bench.report import ModelFigures, render
from elastic_inference.bench.run import Round, median_round


def round_of(model_fps: float, decode_fps: float, worker_fps: float) -> Round:
    return Round(model_fps, Rate(decode_fps, 1.0), [Drain(worker_fps, 2.0, 0.1, 1000)])


def test_a_rounds_share_uses_its_own_limits() -> None:
    # shared limit 1 / (1/2000 + 1/2000) = 1000
    assert round_of(2000, 2000, 750).share == pytest.approx(0.75)


def test_the_median_round_is_reported_whatever_the_order() -> None:
    slow_machine = round_of(1000, 1000, 400)  # 0.80 of a shared limit of 500
    fast = round_of(2000, 2000, 700)  # 0.70
    middle = round_of(1600, 1600, 600)  # 0.75
    for order in ([slow_machine, fast, middle], [middle, slow_machine, fast]):
        assert median_round(order) is middle
    assert median_round([fast]) is fast


def test_render_lists_every_rounds_share() -> None:
    f = ModelFigures("face", "blazeface", "128x128", 4, batch=8, model_only_fps=1600,
                     detector_only_fps=1500, decode_only_fps=1600, worker_fps=600,
                     cpu_ms_per_frame={"worker": 2.0, "redis": 0.1, "decode_alone": 1.0,
                                       "inference_alone": 0.7, "rest": 0.3},
                     rounds=[0.8, 0.7, 0.75])
    text = render({"quick": False, "machine": {"cpu": "x", "cores": 2, "openvino": "v",
                                               "device": "CPU"}}, [f], [], [])
    assert ("blazeface: worker / shared limit in 3 rounds (limits and worker back to back): "
            "0.80, 0.70, 0.75; the row is the median round") in text
    one = render({"quick": True, "machine": {"cpu": "x", "cores": 2, "openvino": "v",
                                             "device": "CPU"}}, [replace(f, rounds=[0.75])],
                 [], [])
    assert "rounds (limits" not in one
