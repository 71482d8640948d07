"""The HorizontalPodAutoscaler's replica rule, for local processes (``ei up --autoscale``).

Kubernetes scales workers with an HPA on the Pods metric ``ei_scale_ratio`` (target average 1).
To make elasticity visible and testable on one machine, ``ei up`` applies the same rule to its
worker processes. This module is that rule alone, pure and clock-injected, following the HPA
controller (``pkg/controller/podautoscaler``) step by step:

1. usage ratio = mean of the pods' metric / target; inside ``1 +- tolerance`` nothing changes;
2. pods without a metric yet count as 0 when scaling up and as the target when scaling down,
   and a scale that this reverses or brings inside the tolerance is skipped;
3. desired = ceil(usage ratio * pods);
4. stabilization: the lowest recommendation of the scale-up window and the highest of the
   scale-down window bound the change (so a burst of idle seconds does not scale down at once);
5. clamp to min/max replicas.

Rate policies (pods or percent per period) are not applied: locally the max bounds a step.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class ScalePolicy:
    """The knobs of an HPA ``spec`` and ``behavior``, with Kubernetes' defaults."""

    min_replicas: int = 1
    max_replicas: int = 4
    target: float = 1.0  # averageValue of ei_scale_ratio
    tolerance: float = 0.1  # --horizontal-pod-autoscaler-tolerance
    scale_up_window: float = 0.0  # behavior.scaleUp.stabilizationWindowSeconds
    scale_down_window: float = 300.0  # behavior.scaleDown.stabilizationWindowSeconds

    def __post_init__(self) -> None:
        if not 1 <= self.min_replicas <= self.max_replicas:
            raise ValueError(f"need 1 <= min_replicas ({self.min_replicas}) <= max_replicas "
                             f"({self.max_replicas})")
        if self.target <= 0 or self.tolerance < 0:
            raise ValueError("target must be > 0 and tolerance >= 0")
        if self.scale_up_window < 0 or self.scale_down_window < 0:
            raise ValueError("stabilization windows must be >= 0")


def metric_replicas(current: int, metrics: Sequence[float | None], policy: ScalePolicy) -> int:
    """Replicas the metrics ask for (steps 1-3); ``None`` is a pod without a metric yet."""
    known = [m for m in metrics if m is not None]
    missing = len(metrics) - len(known)
    if not known:
        return current
    usage = sum(known) / len(known) / policy.target
    if missing == 0:
        if abs(1.0 - usage) <= policy.tolerance:
            return current
        return math.ceil(usage * len(known))
    # Be conservative about pods we cannot see: they hold back the direction we would move in.
    assumed = policy.target if usage < 1.0 else 0.0
    new_usage = (sum(known) + assumed * missing) / len(metrics) / policy.target
    if (abs(1.0 - new_usage) <= policy.tolerance or (usage < 1.0 < new_usage)
            or (usage > 1.0 > new_usage)):
        return current
    replicas = math.ceil(new_usage * len(metrics))
    if (new_usage < 1.0 and replicas > current) or (new_usage > 1.0 and replicas < current):
        return current
    return replicas


class Autoscaler:
    """One workload's HPA: feed it the pods' metrics every sync period, get the replica count."""

    def __init__(self, policy: ScalePolicy) -> None:
        self.policy = policy
        self._recommendations: deque[tuple[float, int]] = deque()

    def desired(self, current: int, metrics: Sequence[float | None], now: float) -> int:
        """Replica count for this sync (steps 1-5); ``now`` is a monotonic clock."""
        p = self.policy
        raw = metric_replicas(current, metrics, p)
        horizon = now - max(p.scale_up_window, p.scale_down_window)
        while self._recommendations and self._recommendations[0][0] < horizon:
            self._recommendations.popleft()
        up, down = raw, raw
        for at, rec in self._recommendations:
            if at > now - p.scale_up_window:
                up = min(up, rec)
            if at > now - p.scale_down_window:
                down = max(down, rec)
        self._recommendations.append((now, raw))
        stabilized = min(max(current, up), down)
        return max(p.min_replicas, min(p.max_replicas, stabilized))


def read_metric(exposition: str, name: str) -> float | None:
    """Sum of the samples of ``name`` in a Prometheus text exposition; None if absent.

    A worker exports one ``ei_scale_ratio`` series; summing keeps this right if it ever
    exports several label sets. Absent means "no metric yet" (the model is still loading).
    """
    from prometheus_client.parser import text_string_to_metric_families

    values = [s.value for fam in text_string_to_metric_families(exposition)
              for s in fam.samples if s.name == name]
    return float(sum(values)) if values else None
