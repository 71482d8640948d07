"""The bench's rounds: each drain bracketed by the limits, the median round reported."""

from __future__ import annotations

from dataclasses import replace

import pytest

from elastic_inference.bench.harness import Drain
from elastic_inference.bench.probes import Rate
from elastic_inference.bench.report import ModelFigures, render
from elastic_inference.bench.rounds import Limits, Round, median_round


def round_of(model_fps: float, decode_fps: float, worker_fps: float) -> Round:
    same = Limits(model_fps, Rate(decode_fps, 1.0))
    return Round(same, same, [Drain(worker_fps, 2.0, 0.1, 1000)])


def test_a_rounds_share_uses_its_own_limits() -> None:
    # shared limit 1 / (1/2000 + 1/2000) = 1000
    assert round_of(2000, 2000, 750).share == pytest.approx(0.75)


def test_a_round_averages_the_limits_before_and_after_its_drain() -> None:
    # The machine slowed down while the worker ran: model 2400 -> 1600, decode 2000 -> 1600.
    r = Round(Limits(2400, Rate(2000, 1.0)), Limits(1600, Rate(1600, 3.0)),
              [Drain(630, 2.0, 0.1, 1000)])
    assert r.limit == Limits(2000, Rate(1800, 2.0))
    limit = 1 / (1 / 2000 + 1 / 1800)  # 947.4
    assert r.share == pytest.approx(630 / limit)
    assert r.drift == pytest.approx(800 / (1 / (1 / 2400 + 1 / 2000)))  # 800 / 1090.9
    assert r.share != pytest.approx(630 / r.before.shared_fps)


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
                     rounds=[0.8, 0.7, 0.75], drift=[0.9, 1.12, 1.0])
    text = render({"quick": False, "machine": {"cpu": "x", "cores": 2, "openvino": "v",
                                               "device": "CPU"}}, [f], [], [])
    assert ("blazeface: worker / shared limit in 3 rounds (limits before and after each drain, "
            "averaged): 0.80, 0.70, 0.75; the row is the median round") in text
    assert "blazeface: shared limit after each drain / before it: 0.90, 1.12, 1.00" in text
    quick = {"quick": True, "machine": {"cpu": "x", "cores": 2, "openvino": "v", "device": "CPU"}}
    one = render(quick, [replace(f, rounds=[0.75], drift=[])], [], [])
    assert "rounds (limits" not in one
