"""Status totals of a type from its workers' heartbeats."""

from __future__ import annotations

import math

from elastic_inference.core.status import summarize_workers


def test_status_totals_sum_workers_and_ask_for_ceil_of_demand() -> None:
    infos = [
        {"model": "ssd", "device": "CPU", "infer_fps": 10.0, "drop_fps": 1.5,
         "scale_ratio": 0.8, "capacity_fps": 12.0},
        {"model": "ssd-int8", "device": "GPU", "infer_fps": 12.5, "drop_fps": 1.5,
         "scale_ratio": 0.9, "capacity_fps": 14.0},
        {"model": "ssd", "device": "CPU", "infer_fps": 0.0, "scale_ratio": 0.0,
         "capacity_fps": 0.0},  # just started: no capacity measured yet, no drop_fps field
    ]
    assert summarize_workers(infos, 3) == {
        "infer_fps": 22.5, "drop_fps": 3.0, "scale_ratio": 1.7, "desired_workers": 2,
        "capacity_fps": 13.0, "models": ["ssd", "ssd-int8"], "devices": ["CPU", "GPU"]}


def test_status_totals_without_demand_and_with_frames_but_no_worker() -> None:
    idle = summarize_workers([{"infer_fps": 0, "scale_ratio": 0, "capacity_fps": 20}], 0)
    assert idle["desired_workers"] == 0 and idle["capacity_fps"] == 20.0
    waiting = summarize_workers([], 16)  # frames queue up, nobody serves the type
    assert waiting == {"infer_fps": 0.0, "drop_fps": 0.0, "scale_ratio": 0.0,
                       "desired_workers": 1, "capacity_fps": 0.0, "models": [],
                       "devices": []}
    light = summarize_workers([{"scale_ratio": 0.05, "infer_fps": 1}], 0)
    assert light["desired_workers"] == 1


def test_status_totals_ignore_float_noise_and_malformed_fields() -> None:
    thirds = [{"scale_ratio": 0.333}, {"scale_ratio": 0.333}, {"scale_ratio": 0.334}]
    assert summarize_workers(thirds, 0)["desired_workers"] == 1
    exact = [{"scale_ratio": 1.0000000002}, {"scale_ratio": 1.0}]
    assert summarize_workers(exact, 0)["desired_workers"] == 2
    junk = [{"infer_fps": "fast", "scale_ratio": True, "capacity_fps": math.inf,
             "drop_fps": None, "model": 7, "device": ""}]
    assert summarize_workers(junk, 0) == {
        "infer_fps": 0.0, "drop_fps": 0.0, "scale_ratio": 0.0, "desired_workers": 0,
        "capacity_fps": 0.0, "models": [], "devices": []}
