from __future__ import annotations

import math

from prometheus_client import CollectorRegistry, generate_latest

from elastic_inference.core.metrics import (
    CapacityWindow,
    RateWindow,
    WorkerMetrics,
    scale_ratio,
)


def test_scale_ratio_sums_to_demand_over_capacity() -> None:
    # Two pods at 40 fps each, capacity 50, the type dropping 30 fps: demand is 110 fps.
    pods = [scale_ratio(40, 30, 2, 50), scale_ratio(40, 30, 2, 50)]
    assert math.isclose(sum(pods), 110 / 50)
    assert math.ceil(sum(pods)) == 3


def test_scale_ratio_is_below_one_when_idle_and_zero_without_capacity() -> None:
    assert scale_ratio(5, 0, 1, 50) < 1
    assert scale_ratio(0, 0, 1, 0) == 0.0


def test_rate_window_forgets_old_events() -> None:
    w = RateWindow(window=5, now=0)
    for t in range(10):
        w.add(10, now=t)
    assert math.isclose(w.rate(now=9.5), 50 / 5)
    assert w.rate(now=100) == 0


def test_rate_window_does_not_underestimate_at_start() -> None:
    w = RateWindow(window=5, now=0)
    w.add(10, now=0.5)
    assert math.isclose(w.rate(now=1.0), 10.0)


def test_capacity_is_frames_per_busy_second_and_kept_when_idle() -> None:
    c = CapacityWindow(window=10)
    c.add(20, 0.5, now=1)
    c.add(20, 0.5, now=2)
    assert math.isclose(c.capacity(now=3), 40.0)
    assert math.isclose(c.capacity(now=100), 40.0)


def test_worker_metrics_use_the_injected_registry() -> None:
    reg = CollectorRegistry()
    m = WorkerMetrics(reg, "face", "blazeface", "CPU")
    m.inferred.inc(3)
    m.dropped["invalid"].inc()
    text = generate_latest(reg).decode()
    assert 'ei_frames_inferred_total{device="CPU",model="blazeface",type="face"} 3.0' in text
    assert 'reason="invalid"' in text and "ei_scale_ratio" in text
