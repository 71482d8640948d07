"""Queries over a stream's result history (``ei:results:{stream}``): results and label counts.

A range may hold far more results than one Redis reply should, so both queries read it page
by page through :meth:`OutputBroker.history` and skip invalid results.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable
from typing import Any

from .broker import OutputBroker
from .result import parse_result

#: Results read from Redis per round trip while scanning a range.
HISTORY_PAGE = 1000


def entry_seconds(entry_id: str) -> float:
    """The publish time of a Redis stream entry id (``<ms>-<n>``), in epoch seconds."""
    return int(entry_id.split("-", 1)[0]) / 1000.0


def only_label(result: dict[str, Any], label: str | None) -> dict[str, Any] | None:
    """``result`` with its detections restricted to ``label``; ``None`` when none is left.

    ``result`` must have been validated (its detections are objects with a label).
    """
    if label is None:
        return result
    kept = [d for d in result["detections"] if d["label"] == label]
    return {**result, "detections": kept} if kept else None


def bucket_count(since: float, until: float, step: float) -> int:
    """Buckets of ``step`` seconds covering ``since..until`` (at least one)."""
    return max(1, math.ceil((until - since) / step))


class LabelBuckets:
    """Per time bucket and label, the most detections of that label in one result.

    "How many are in view": the largest count in a single frame, not a sum over frames (which
    would grow with the frame rate). Buckets start at ``since + k * step``.
    """

    def __init__(self, since: float, until: float, step: float) -> None:
        self.since, self.step = since, step
        self.n = bucket_count(since, until, step)
        self.buckets: dict[int, dict[str, int]] = {}

    def add(self, t: float, labels: Iterable[str]) -> None:
        """One result published at ``t`` with detections of ``labels`` (repeats count)."""
        k = min(self.n - 1, max(0, int((t - self.since) // self.step)))
        bucket = self.buckets.setdefault(k, {})
        for label, n in Counter(labels).items():
            bucket[label] = max(bucket.get(label, 0), n)

    def series(self) -> dict[str, list[list[float]]]:
        """``{label: [[bucket start, n], ...]}``; buckets without results are left out, and a
        label absent from a bucket that has results counts 0 there."""
        labels = sorted({label for b in self.buckets.values() for label in b})
        ks = sorted(self.buckets)
        return {label: [[round(self.since + k * self.step, 3), self.buckets[k].get(label, 0)]
                        for k in ks] for label in labels}


def query_results(broker: OutputBroker, stream: str, since: float, until: float, limit: int,
                  label: str | None) -> tuple[list[dict[str, Any]], bool]:
    """The newest ``limit`` valid results in the range (with ``label``), oldest first, and
    whether older matching ones were left out (sync)."""
    newest_first: list[dict[str, Any]] = []
    after = ""
    while page := broker.history(stream, since, until, HISTORY_PAGE, after=after, reverse=True):
        for _, raw in page:
            parsed = parse_result(raw)
            kept = only_label(parsed[1], label) if parsed is not None else None
            if kept is None:
                continue
            if len(newest_first) == limit:
                return newest_first[::-1], True
            newest_first.append(kept)
        after = page[-1][0]
    return newest_first[::-1], False


def query_counts(broker: OutputBroker, stream: str, since: float, until: float,
                 step: float) -> tuple[dict[str, list[list[float]]], bool]:
    """Label series of the range (see :class:`LabelBuckets`) and whether any result was
    found (sync)."""
    buckets = LabelBuckets(since, until, step)
    found = False
    after = ""
    while page := broker.history(stream, since, until, HISTORY_PAGE, after=after):
        found = True
        for entry_id, raw in page:
            parsed = parse_result(raw)
            if parsed is not None:
                buckets.add(entry_seconds(entry_id), (d.label for d in parsed[0].detections))
        after = page[-1][0]
    return buckets.series(), found
