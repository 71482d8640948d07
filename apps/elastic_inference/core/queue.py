"""Bounded per-type frame queues in Redis LISTs.

Producers push with one Lua call that appends, trims the oldest beyond ``maxlen`` and counts
pushes and overflow drops in ``ei:queue:{type}:stats``, atomically, so the bound holds with any
number of producers. Workers pop batches: a blocking pop for the first frame (never spinning on
an empty queue), then a non-blocking ``LPOP key count`` for the rest.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import redis

from . import keys
from .redisconn import RedisClient, run_script
from .text import as_text

_PUSH_LUA = """
local n = redis.call('RPUSH', KEYS[1], ARGV[1])
local maxlen = tonumber(ARGV[2])
local dropped = 0
if maxlen > 0 and n > maxlen then
  dropped = n - maxlen
  redis.call('LTRIM', KEYS[1], dropped, -1)
  redis.call('HINCRBY', KEYS[2], 'overflow', dropped)
  n = maxlen
end
redis.call('HINCRBY', KEYS[2], 'pushed', 1)
return {n, dropped}
"""

#: Counters kept in the stats hash; drop reasons match ``ei_frames_dropped_total{reason}``.
DROP_REASONS = ("overflow", "stale", "invalid")


@dataclass(frozen=True)
class PushResult:
    length: int
    dropped: int


@dataclass(frozen=True)
class QueueStats:
    infer_type: str
    length: int
    pushed: int
    drops: dict[str, int]

    @property
    def dropped(self) -> int:
        return sum(self.drops.values())


class FrameQueue:
    """The frame queue of one inference type."""

    def __init__(self, client: RedisClient, infer_type: str, maxlen: int = 16) -> None:
        self.client = client
        self.type = infer_type
        self.key = keys.queue(infer_type)
        self.stats_key = keys.queue_stats(infer_type)
        self.maxlen = maxlen
        self._push = client.register_script(_PUSH_LUA)

    def push(self, message: bytes) -> PushResult:
        """Append one encoded frame, trimming the oldest beyond ``maxlen``."""
        n, dropped = self._push(keys=[self.key, self.stats_key], args=[message, self.maxlen])
        return PushResult(int(n), int(dropped))

    def push_pipelined(self, pipe: redis.client.Pipeline, message: bytes) -> None:
        """Queue a push on ``pipe`` (used to feed several types in one round trip)."""
        run_script(self._push, [self.key, self.stats_key], [message, self.maxlen], pipe)

    def pop_batch(self, max_items: int, timeout: float) -> list[bytes]:
        """Block up to ``timeout`` s for one frame, then take up to ``max_items - 1`` more."""
        first = self.client.blpop([self.key], timeout=timeout)
        if first is None:
            return []
        return [first[1], *self.pop_nowait(max_items - 1)] if max_items > 1 else [first[1]]

    def pop_nowait(self, max_items: int) -> list[bytes]:
        """Up to ``max_items`` frames without waiting (a worker with work in hand tops up)."""
        more = self.client.lpop(self.key, max_items)
        return list(more) if more else []

    def pop_pipelined(self, pipe: redis.client.Pipeline, max_items: int) -> None:
        """Queue a :meth:`pop_nowait` on ``pipe``; its reply is a list of frames or None."""
        pipe.lpop(self.key, max_items)

    def count_drops(self, reason: str, n: int = 1) -> None:
        """Record drops a worker made (stale/invalid) where every peer can see them."""
        if reason not in DROP_REASONS:
            raise ValueError(f"unknown drop reason {reason!r}")
        self.client.hincrby(self.stats_key, reason, n)

    def length(self) -> int:
        return int(self.client.llen(self.key))

    def stats(self) -> QueueStats:
        pipe = self.client.pipeline(transaction=False)
        pipe.llen(self.key)
        pipe.hgetall(self.stats_key)
        length, raw = pipe.execute()
        counts = {as_text(k): int(v) for k, v in raw.items()}
        return QueueStats(
            infer_type=self.type,
            length=int(length),
            pushed=counts.get("pushed", 0),
            drops={r: counts.get(r, 0) for r in DROP_REASONS},
        )


def push_to_types(queues: Sequence[FrameQueue], messages: Sequence[bytes]) -> list[PushResult]:
    """Push one message per queue in a single round trip; returns each queue's result."""
    if not queues:
        return []
    pipe = queues[0].client.pipeline(transaction=False)
    for q, m in zip(queues, messages, strict=True):
        q.push_pipelined(pipe, m)
    return [PushResult(int(n), int(d)) for n, d in pipe.execute()]
