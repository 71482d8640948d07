"""Stream and worker registries: members heartbeat, and vanish a few seconds after they stop.

A sorted set scores each member by its last heartbeat; a hash with a TTL holds its details.
Readers ignore (and prune) members whose heartbeat is older than ``ttl``. This needs no
keyspace notifications, which managed Redis services often disable.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from . import keys
from .redisconn import RedisClient
from .text import as_text

DEFAULT_TTL = 5.0
HEARTBEAT_INTERVAL = 1.0


@dataclass(frozen=True)
class Member:
    id: str
    last_seen: float
    info: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        """As the API shows a member: its details plus ``id`` and ``last_seen``."""
        return {**self.info, "id": self.id, "last_seen": self.last_seen}


class Heartbeats:
    """Members of one group (a sorted set) with per-member details (a hash each)."""

    def __init__(self, client: RedisClient, index_key: str, info_key: Callable[[str], str],
                 ttl: float = DEFAULT_TTL) -> None:
        self.client = client
        self.index_key = index_key
        self.info_key = info_key
        self.ttl = ttl

    def beat(self, member: str, info: Mapping[str, Any], now: float | None = None) -> None:
        """Register or refresh ``member`` with ``info`` (values stored as JSON)."""
        now = time.time() if now is None else now
        key = self.info_key(member)
        # One round trip, not a transaction: the index and the details are in different hash
        # slots of a Redis Cluster, and readers already take a member without details (they
        # expire).
        pipe = self.client.pipeline(transaction=False)
        pipe.zadd(self.index_key, {member: now})
        pipe.hset(key, mapping={"_seen": json.dumps(now),
                                **{k: json.dumps(v) for k, v in info.items()}})
        pipe.pexpire(key, int(self.ttl * 1000) * 2)
        pipe.execute()

    def remove(self, member: str) -> None:
        pipe = self.client.pipeline(transaction=False)
        pipe.zrem(self.index_key, member)
        pipe.delete(self.info_key(member))
        pipe.execute()

    def ids(self, now: float | None = None) -> list[str]:
        """Live member ids; members past their TTL are pruned on the way."""
        now = time.time() if now is None else now
        pipe = self.client.pipeline(transaction=False)
        pipe.zremrangebyscore(self.index_key, "-inf", now - self.ttl)
        pipe.zrange(self.index_key, 0, -1)
        _, raw = pipe.execute()
        return [as_text(m) for m in raw]

    def count(self, now: float | None = None) -> int:
        now = time.time() if now is None else now
        return int(self.client.zcount(self.index_key, now - self.ttl, "+inf"))

    def members(self, now: float | None = None) -> list[Member]:
        """Live members with their details, sorted by id."""
        now = time.time() if now is None else now
        pipe = self.client.pipeline(transaction=False)
        pipe.zremrangebyscore(self.index_key, "-inf", now - self.ttl)
        pipe.zrange(self.index_key, 0, -1, withscores=True)
        _, raw = pipe.execute()
        pipe = self.client.pipeline(transaction=False)
        ids = [(as_text(m), float(s)) for m, s in raw]
        for member, _ in ids:
            pipe.hgetall(self.info_key(member))
        out = []
        for (member, seen), info in zip(ids, pipe.execute(), strict=True):
            details = {}
            for k, v in info.items():
                if k in (b"_seen", "_seen"):
                    continue
                try:
                    details[as_text(k)] = json.loads(v)
                except ValueError:
                    continue
            out.append(Member(member, seen, details))
        return sorted(out, key=lambda m: m.id)


class StreamRegistry(Heartbeats):
    """Live source streams: id -> types, source kind, size, fps."""

    def __init__(self, client: RedisClient, ttl: float = DEFAULT_TTL) -> None:
        super().__init__(client, keys.stream_registry(), keys.stream_info, ttl)


class WorkerRegistry(Heartbeats):
    """Live workers of one inference type, so each knows how many peers share its queue."""

    def __init__(self, client: RedisClient, infer_type: str, ttl: float = DEFAULT_TTL) -> None:
        super().__init__(client, keys.worker_registry(infer_type), keys.worker_info, ttl)
        self.type = infer_type

    def beat(self, member: str, info: Mapping[str, Any], now: float | None = None) -> None:
        self.client.sadd(keys.worker_types(), self.type)
        super().beat(member, info, now)


def worker_types(client: RedisClient) -> list[str]:
    """Every inference type that has had a worker, sorted."""
    return sorted(as_text(t)
                  for t in client.smembers(keys.worker_types()))
