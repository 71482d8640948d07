"""Per inference type: queue, workers and their totals, read from Redis.

One aggregation for ``GET /api/status`` and ``ei status``, so both show the same numbers.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from .keys import TYPE_RE
from .queue import FrameQueue
from .redisconn import RedisClient
from .registry import Member, StreamRegistry, WorkerRegistry, worker_types


def _number(info: Mapping[str, Any], name: str) -> float:
    """A numeric heartbeat field, 0 when missing or malformed (older workers lack some)."""
    value = info.get(name)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return 0.0
    return float(value) if math.isfinite(value) else 0.0


def summarize_workers(infos: Sequence[Mapping[str, Any]], queue_length: int) -> dict[str, Any]:
    """A type's totals from its workers' heartbeats (design.md section 5).

    Each worker publishes its share of the type's drops and its scale ratio, so sums give the
    type's drop rate and its demand in workers; ``desired_workers`` is what an HPA on
    ``ei_scale_ratio`` with ``averageValue: 1`` would ask for, at least 1 while frames wait or
    flow. Capacity is averaged over the workers that have measured it (0 = never busy).
    """
    infer_fps = sum(_number(i, "infer_fps") for i in infos)
    drop_fps = sum(_number(i, "drop_fps") for i in infos)
    ratio = sum(_number(i, "scale_ratio") for i in infos)
    capacities = [c for c in (_number(i, "capacity_fps") for i in infos) if c > 0]
    demand = ratio > 0 or infer_fps > 0 or drop_fps > 0 or queue_length > 0
    # Rounded first: float noise in a sum of rounded ratios must not ask for one more pod.
    desired = max(1, math.ceil(round(ratio, 3))) if demand else 0

    def distinct(name: str) -> list[str]:
        return sorted({v for i in infos if isinstance(v := i.get(name), str) and v})

    return {"infer_fps": round(infer_fps, 2), "drop_fps": round(drop_fps, 2),
            "scale_ratio": round(ratio, 3), "desired_workers": desired,
            "capacity_fps": round(sum(capacities) / len(capacities), 2) if capacities else 0.0,
            "models": distinct("model"), "devices": distinct("device")}


def type_status(client: RedisClient, streams: Sequence[Member]) -> list[dict[str, Any]]:
    """One row per inference type, sorted: its queue, its workers and their totals.

    Types are those that ever had a worker plus those ``streams`` feed, so a type whose
    frames pile up with no worker at all still shows.
    """
    types = set(worker_types(client))
    for member in streams:
        declared = member.info.get("types")
        if isinstance(declared, list):
            types.update(t for t in declared if isinstance(t, str) and TYPE_RE.fullmatch(t))
    rows = []
    for infer_type in sorted(types):
        stats = FrameQueue(client, infer_type).stats()
        workers = WorkerRegistry(client, infer_type).members()
        rows.append({
            "type": infer_type,
            "queue": {"length": stats.length, "pushed": stats.pushed,
                      "dropped": stats.dropped, "drops": stats.drops},
            "workers": [w.to_json() for w in workers],
            **summarize_workers([w.info for w in workers], stats.length),
        })
    return rows


def collect_status(client: RedisClient) -> dict[str, Any]:
    """Every type's row plus the live stream count: ``GET /api/status`` (sync)."""
    streams = StreamRegistry(client).members()
    return {"streams": len(streams), "types": type_status(client, streams)}
