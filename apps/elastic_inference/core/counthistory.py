"""A stream's rule counts as ``ei track`` keeps them, read for ``GET
/api/streams/{id}/rules/counts``: the samples of ``ei:counts-history:{stream}`` in a time range
and the running totals of ``ei:counts:{stream}`` (doc/analytics.md, "Wire")."""

from __future__ import annotations

import json
import logging
from typing import Any

from . import keys
from .redisconn import RedisClient
from .text import as_text

log = logging.getLogger(__name__)

#: Samples one answer holds at most: a day of the 10 s samples is 8,640.
MAX_SAMPLES = 10_000
_BIGGEST_SEQ = 2**64 - 1


def totals(raw: dict[Any, Any]) -> dict[str, dict[str, dict[str, int]]]:
    """``RULE|WHAT|LABEL -> n`` fields nested as ``{rule: {what: {label: n}}}``; a field of
    another shape, or a count that is not an integer, is left out."""
    out: dict[str, dict[str, dict[str, int]]] = {}
    for field, value in raw.items():
        parts = as_text(field).split("|")
        try:
            n = int(value)
        except ValueError:
            continue
        if len(parts) == 3:
            out.setdefault(parts[0], {}).setdefault(parts[1], {})[parts[2]] = n
    return out


def read_counts(client: RedisClient, stream: str, since: float,
                until: float) -> dict[str, Any]:
    """``{"samples": [{"ts", "rules"}...] oldest first, "truncated", "totals"}``; a damaged
    sample is skipped (and logged)."""
    pipe = client.pipeline(transaction=False)
    pipe.xrange(keys.counts_history(stream), f"{int(since * 1000)}-0",
                f"{int(until * 1000)}-{_BIGGEST_SEQ}", count=MAX_SAMPLES + 1)
    pipe.hgetall(keys.counts(stream))
    entries, current = pipe.execute()
    samples = []
    for entry_id, fields in entries[:MAX_SAMPLES]:
        try:
            sample = json.loads(fields[b"counts"])
            if not isinstance(sample, dict) or not isinstance(sample.get("rules"), dict):
                raise ValueError("not {ts, rules}")
        except (KeyError, ValueError) as exc:
            log.warning("counts of %s: skipping damaged sample %s: %s", stream,
                        as_text(entry_id), exc)
            continue
        samples.append({"ts": sample.get("ts"), "rules": sample["rules"]})
    return {"samples": samples, "truncated": len(entries) > MAX_SAMPLES,
            "totals": totals(current)}
