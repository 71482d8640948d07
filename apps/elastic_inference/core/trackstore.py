"""What ``ei track`` reads and writes in Redis besides leases (doc/analytics.md, "Wire").

Tracks go to ``ei:tracks:{stream}`` (approximate MAXLEN, a live buffer like ``ei:out``), event
counts to the HASH ``ei:counts:{stream}`` (``RULE|WHAT|LABEL`` -> n, HINCRBY, so a takeover
continues them), samples of the totals to ``ei:counts-history:{stream}`` (trimmed by age like
the result history), and track ids come from INCRBY on ``ei:track:ids:{stream}``. Writes of a
whole read batch go in one pipelined round trip.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from . import keys
from .analytics.counting import Event, what_of
from .redisconn import RedisClient
from .text import as_text

#: Separates rule, what and label in a counts field (a rule name cannot hold it).
FIELD_SEP = "|"


def counts_field(rule: str, what: str, label: str) -> str:
    return f"{rule}{FIELD_SEP}{what}{FIELD_SEP}{label}"


def compact(data: Any) -> str:
    return json.dumps(data, separators=(",", ":"))


class TrackStore:
    """Track entries, counts and their history, track ids, cursors into ``ei:out``."""

    def __init__(self, client: RedisClient, tracks_maxlen: int = 64,
                 retention: float = 3600.0) -> None:
        self.client = client
        self.tracks_maxlen = tracks_maxlen
        self.retention = retention

    def allocate(self, stream: str, n: int) -> int:
        """The first of ``n`` new track ids of ``stream``, never given before."""
        return int(self.client.incrby(keys.track_ids(stream), n)) - n + 1

    def totals(self, stream: str) -> dict[tuple[str, str, str], int]:
        """The stream's counts as stored (fields that do not parse are ignored)."""
        out: dict[tuple[str, str, str], int] = {}
        for field, value in self.client.hgetall(keys.counts(stream)).items():
            parts = as_text(field).split(FIELD_SEP, 2)
            if len(parts) == 3:
                out[(parts[0], parts[1], parts[2])] = int(value)
        return out

    def reset_counts(self, stream: str) -> None:
        """The stream's rules were written: its counts start again."""
        self.client.delete(keys.counts(stream))

    def rules_versions(self, streams: Sequence[str]) -> dict[str, tuple[int, int]]:
        """``(version, updated)`` of each stream's rules, ``(0, 0)`` without (one round trip)."""
        pipe = self.client.pipeline(transaction=False)
        for s in streams:
            pipe.hmget(keys.rules(s), ["version", "updated"])
        return {s: (int(v or 0), int(u or 0))
                for s, (v, u) in zip(streams, pipe.execute(), strict=True)}

    def newest_id(self, stream: str) -> str:
        """Id of the newest entry of ``ei:out:{stream}`` (a new owner reads on from there:
        live), ``0-0`` when it is empty."""
        raw = self.client.xrevrange(keys.out(stream), count=1)
        return as_text(raw[0][0]) if raw else "0-0"

    def write(self, entries: Iterable[tuple[str, Mapping[str, Any], Sequence[Event]]],
              history: Iterable[tuple[str, Mapping[str, Any]]] = (),
              now: float | None = None) -> None:
        """Tracks entries ``(stream, JSON, events)`` with their count increments, and counts
        samples ``(stream, counts)``, in one round trip."""
        now = time.time() if now is None else now
        pipe = self.client.pipeline(transaction=False)
        for stream, entry, events in entries:
            pipe.xadd(keys.tracks(stream), {"tracks": compact(entry)},
                      maxlen=self.tracks_maxlen, approximate=True)
            for e in events:
                pipe.hincrby(keys.counts(stream), counts_field(e.rule, what_of(e), e.label), 1)
        min_id = str(int((now - self.retention) * 1000))
        for stream, counts in history:
            pipe.xadd(keys.counts_history(stream),
                      {"counts": compact({"ts": round(now, 3), "rules": counts})},
                      minid=min_id, approximate=True)
        if len(pipe):
            pipe.execute()
