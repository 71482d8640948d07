"""The HPA replica rule as ``ei up --autoscale`` applies it (cases from the HPA's own docs)."""

from __future__ import annotations

import pytest

from elastic_inference.core.autoscale import Autoscaler, ScalePolicy, metric_replicas, read_metric

P = ScalePolicy(min_replicas=1, max_replicas=10, scale_down_window=0.0)


@pytest.mark.parametrize(
    ("current", "metrics", "expected"),
    [
        (1, [2.6], 3),  # one pod at 2.6x its capacity: ceil(2.6) pods
        (3, [0.9, 0.95, 1.05], 3),  # mean 0.967: inside the 10 % tolerance, no change
        (3, [1.2, 1.2, 1.2], 4),  # ceil(3.6)
        (4, [0.2, 0.1, 0.3, 0.2], 1),  # idle type: ceil(0.8) = 1
        (2, [0.0, 0.0], 0),  # the rule itself may say 0; min_replicas is applied later
    ],
)
def test_desired_is_ceil_of_the_ratio_sum_outside_the_tolerance(
        current: int, metrics: list[float], expected: int) -> None:
    assert metric_replicas(current, metrics, P) == expected


def test_a_pod_without_a_metric_counts_as_zero_when_scaling_up() -> None:
    # known mean 3.0 says "up"; the silent pod is assumed idle: (3 + 0) / 2 = 1.5 -> ceil(3.0)
    assert metric_replicas(2, [3.0, None], P) == 3


def test_a_pod_without_a_metric_counts_as_the_target_when_scaling_down() -> None:
    # known mean 0.2 says "down"; the silent pod is assumed at target: (0.2 + 1) / 2 = 0.6
    assert metric_replicas(2, [0.2, None], P) == 2  # ceil(1.2) = 2: held at the current count
    assert metric_replicas(4, [0.2, 0.2, 0.2, None], P) == 2  # (0.6 + 1) / 4 = 0.4 -> ceil(1.6)


def test_no_metric_at_all_keeps_the_current_count() -> None:
    assert metric_replicas(3, [None, None, None], P) == 3


def test_scale_down_waits_for_the_stabilization_window() -> None:
    scaler = Autoscaler(ScalePolicy(min_replicas=1, max_replicas=5, scale_down_window=30.0))
    assert scaler.desired(1, [3.0], now=0.0) == 3
    # Load gone: every recommendation is 1, but the window still remembers "3".
    assert scaler.desired(3, [0.0, 0.0, 0.0], now=10.0) == 3
    assert scaler.desired(3, [0.0, 0.0, 0.0], now=29.0) == 3
    assert scaler.desired(3, [0.0, 0.0, 0.0], now=31.0) == 1


def test_scale_up_window_takes_the_lowest_recent_recommendation() -> None:
    scaler = Autoscaler(ScalePolicy(min_replicas=1, max_replicas=9, scale_up_window=20.0,
                                    scale_down_window=0.0))
    assert scaler.desired(1, [1.0], now=0.0) == 1  # recommendation 1 is remembered
    assert scaler.desired(1, [4.0], now=5.0) == 1  # a short burst does not scale up
    assert scaler.desired(1, [4.0], now=21.0) == 4  # the "1" left the window


def test_min_and_max_bound_the_result() -> None:
    scaler = Autoscaler(ScalePolicy(min_replicas=2, max_replicas=3, scale_down_window=0.0))
    assert scaler.desired(2, [9.0, 9.0], now=0.0) == 3
    assert scaler.desired(3, [0.0, 0.0, 0.0], now=1.0) == 2


def test_policy_rejects_min_above_max() -> None:
    with pytest.raises(ValueError, match="min_replicas"):
        ScalePolicy(min_replicas=3, max_replicas=2)


def test_read_metric_sums_the_series_and_tells_absent_from_zero() -> None:
    text = ('# TYPE ei_scale_ratio gauge\n'
            'ei_scale_ratio{type="people",model="m",device="CPU"} 1.25\n'
            '# TYPE ei_infer_fps gauge\n'
            'ei_infer_fps{type="people",model="m",device="CPU"} 30\n')
    assert read_metric(text, "ei_scale_ratio") == pytest.approx(1.25)
    assert read_metric(text, "ei_drop_fps") is None
    assert read_metric(text.replace("1.25", "0"), "ei_scale_ratio") == 0.0
