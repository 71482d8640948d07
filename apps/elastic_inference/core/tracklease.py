"""Which ``ei track`` replica tracks which stream: one lease per stream, a heartbeat per replica.

A stream's lease (:func:`.keys.track_lease`) is a STRING holding the owner's replica id with a
short expiry. It is taken with ``SET NX PX`` and renewed or released only by its owner (a Lua
script compares the value first), so a replica that paused past its expiry and lost the
stream to another never renews or deletes the other's lease. A replica that dies stops
renewing, and its streams are free again after one lease period.

Replicas heartbeat in one sorted set (:func:`.keys.track_replicas`, score = epoch seconds);
each takes at most its fair share, ``ceil(live streams / live replicas)``, and gives back what
it holds beyond that, so a replica that joins finds free streams within a claim interval or
two. :func:`plan` is that decision, pure so it is tested without Redis.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from . import keys
from .redisconn import RedisClient, run_script
from .text import as_text

#: Renew: KEYS[1] the stream's lease; ARGV[1] this replica's id, ARGV[2] the expiry in ms.
#: Extends the expiry only if the lease still names this replica; 1 if it did, else 0.
_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""

#: Release: KEYS[1] the stream's lease; ARGV[1] this replica's id. Deletes the lease only if it
#: still names this replica; 1 if it did, else 0.
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


def fair_share(streams: int, replicas: int) -> int:
    """Most streams one replica may hold: live streams over live replicas, rounded up."""
    return math.ceil(streams / max(1, replicas))


@dataclass(frozen=True)
class Plan:
    """What a replica does in one claim turn: give back ``release``, try to take ``claim``
    (in order, until it holds ``share``)."""

    share: int
    release: tuple[str, ...]
    claim: tuple[str, ...]


def plan(live: Sequence[str], owned: Iterable[str], replicas: int) -> Plan:
    """The turn of a replica holding ``owned`` when ``live`` streams exist and ``replicas``
    replicas (this one included) are alive: streams no longer live are given back, then the
    excess over the fair share (the last taken first, by name order here); free candidates
    are the live streams it does not hold, to be tried in name order."""
    live_set = set(live)
    share = fair_share(len(live_set), replicas)
    mine = sorted(s for s in owned if s in live_set)
    gone = sorted(s for s in owned if s not in live_set)
    extra = mine[share:]
    candidates = [] if len(mine) >= share else sorted(live_set - set(mine))
    return Plan(share, tuple(gone + extra), tuple(candidates))


class TrackLeases:
    """The leases of one replica (``owner``) and its heartbeat among the replicas."""

    def __init__(self, client: RedisClient, owner: str, lease_s: float = 5.0,
                 replica_ttl: float = 5.0) -> None:
        self.client = client
        self.owner = owner
        self.lease_ms = max(1, int(lease_s * 1000))
        self.replica_ttl = replica_ttl
        self._renew = client.register_script(_RENEW)
        self._release = client.register_script(_RELEASE)

    def acquire(self, stream: str) -> bool:
        """Take the stream's lease if nobody holds it (``SET NX PX``)."""
        return bool(self.client.set(keys.track_lease(stream), self.owner, nx=True,
                                    px=self.lease_ms))

    def renew(self, streams: Iterable[str]) -> set[str]:
        """Extend the leases of ``streams`` still held; the ones that are (one round trip)."""
        streams = list(streams)
        if not streams:
            return set()
        pipe = self.client.pipeline(transaction=False)
        for s in streams:
            run_script(self._renew, [keys.track_lease(s)], [self.owner, self.lease_ms], pipe)
        return {s for s, ok in zip(streams, pipe.execute(), strict=True) if ok}

    def release(self, streams: Iterable[str]) -> None:
        """Give the leases of ``streams`` back, where still held (one round trip)."""
        streams = list(streams)
        if not streams:
            return
        pipe = self.client.pipeline(transaction=False)
        for s in streams:
            run_script(self._release, [keys.track_lease(s)], [self.owner], pipe)
        pipe.execute()

    def holder(self, stream: str) -> str | None:
        """The replica holding the stream's lease, if any."""
        raw = self.client.get(keys.track_lease(stream))
        return None if raw is None else as_text(raw)

    def beat(self, now: float | None = None) -> int:
        """Heartbeat this replica and prune the silent ones; live replicas, this one included."""
        now = time.time() if now is None else now
        pipe = self.client.pipeline(transaction=False)
        pipe.zadd(keys.track_replicas(), {self.owner: now})
        pipe.zremrangebyscore(keys.track_replicas(), "-inf", now - self.replica_ttl)
        pipe.zcard(keys.track_replicas())
        return max(1, int(pipe.execute()[2]))

    def leave(self) -> None:
        """Leave the replica set (on a clean stop), so the others' share grows at once."""
        self.client.zrem(keys.track_replicas(), self.owner)
