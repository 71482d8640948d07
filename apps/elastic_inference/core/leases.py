"""Which replica holds which item (a stream ``ei track`` tracks, a source ``ei stream --pool``
reads): one lease per item, a heartbeat per replica.

An item's lease (:func:`.keys.track_lease`, :func:`.keys.source_lease`) is a STRING holding the
owner's replica id with a short expiry. It is taken with ``SET NX PX`` and renewed or released
only by its owner (a Lua script compares the value first), so a replica that paused past its
expiry and lost the item to another never renews or deletes the other's lease. A replica that
dies stops renewing, and its items are free again after one lease period.

Replicas heartbeat in one sorted set (:func:`.keys.track_replicas`, :func:`.keys.stream_pool`,
score = epoch seconds); each takes at most its fair share, ``ceil(live items / live replicas)``
(and at most ``cap`` if given), and gives back what it holds beyond that, so a replica that
joins finds free items within a claim interval or two. :func:`plan` is that decision, pure so
it is tested without Redis.

A holder that cannot renew (Redis unreachable) must stop using the item before its lease can
lapse in Redis: :class:`LeaseStop` is a stop event that also counts as set from
:meth:`Leases.valid_until` of the last renewal on, checked by the holder's own thread.
"""

from __future__ import annotations

import math
import os
import re
import socket
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from .redisconn import RedisClient, run_script
from .text import as_text

#: Most of a lease a holder gives up as a safety margin: it stops using the item this long
#: before the lease can lapse in Redis (a quarter of the lease at most).
MAX_MARGIN_S = 1.0

#: Renew: KEYS[1] the item's lease; ARGV[1] this replica's id, ARGV[2] the expiry in ms.
#: Extends the expiry only if the lease still names this replica; 1 if it did, else 0.
_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""

#: Release: KEYS[1] the item's lease; ARGV[1] this replica's id. Deletes the lease only if it
#: still names this replica; 1 if it did, else 0.
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


def default_replica_id(prefix: str) -> str:
    """``PREFIX-HOST-PID``: unique among live replicas, and a valid id (stream-id characters)."""
    host = re.sub(r"[^A-Za-z0-9_.-]", "-", socket.gethostname())[:40]
    return f"{prefix}-{host}-{os.getpid()}"


def fair_share(items: int, replicas: int, cap: int | None = None) -> int:
    """Most items one replica may hold: live items over live replicas, rounded up, and at most
    ``cap`` (a replica's own limit, such as ``EI_MAX_SOURCES``)."""
    share = math.ceil(items / max(1, replicas))
    return share if cap is None else min(share, max(0, cap))


@dataclass(frozen=True)
class Plan:
    """What a replica does in one claim turn: give back ``release``, try to take ``claim``
    (in order, until it holds ``share``)."""

    share: int
    release: tuple[str, ...]
    claim: tuple[str, ...]


def plan(live: Sequence[str], owned: Iterable[str], replicas: int,
         cap: int | None = None) -> Plan:
    """The turn of a replica holding ``owned`` when ``live`` items exist and ``replicas``
    replicas (this one included) are alive: items no longer live are given back, then the
    excess over the fair share (bounded by ``cap``; the last by name order first); free
    candidates are the live items it does not hold, to be tried in name order."""
    live_set = set(live)
    share = fair_share(len(live_set), replicas, cap)
    mine = sorted(s for s in owned if s in live_set)
    gone = sorted(s for s in owned if s not in live_set)
    extra = mine[share:]
    candidates = [] if len(mine) >= share else sorted(live_set - set(mine))
    return Plan(share, tuple(gone + extra), tuple(candidates))


class Leases:
    """The leases of one replica (``owner``) and its heartbeat among the replicas:
    ``lease_key(item)`` names an item's lease, ``replicas_key`` the replicas' sorted set."""

    def __init__(self, client: RedisClient, owner: str, lease_key: Callable[[str], str],
                 replicas_key: str, lease_s: float = 5.0, replica_ttl: float = 5.0) -> None:
        self.client = client
        self.owner = owner
        self.lease_key = lease_key
        self.replicas_key = replicas_key
        self.lease_s = lease_s
        self.lease_ms = max(1, int(lease_s * 1000))
        self.replica_ttl = replica_ttl
        self._renew = client.register_script(_RENEW)
        self._release = client.register_script(_RELEASE)

    def acquire(self, item: str) -> bool:
        """Take the item's lease if nobody holds it (``SET NX PX``)."""
        return bool(self.client.set(self.lease_key(item), self.owner, nx=True,
                                    px=self.lease_ms))

    def renew(self, items: Iterable[str]) -> set[str]:
        """Extend the leases of ``items`` still held; the ones that are (one round trip)."""
        items = list(items)
        if not items:
            return set()
        pipe = self.client.pipeline(transaction=False)
        for s in items:
            run_script(self._renew, [self.lease_key(s)], [self.owner, self.lease_ms], pipe)
        return {s for s, ok in zip(items, pipe.execute(), strict=True) if ok}

    def release(self, items: Iterable[str]) -> None:
        """Give the leases of ``items`` back, where still held (one round trip)."""
        items = list(items)
        if not items:
            return
        pipe = self.client.pipeline(transaction=False)
        for s in items:
            run_script(self._release, [self.lease_key(s)], [self.owner], pipe)
        pipe.execute()

    def valid_until(self, sent: float) -> float:
        """Until when (monotonic) a lease acquired or renewed by a request sent at ``sent`` is
        surely still held: Redis set its expiry after ``sent``, and a margin is kept."""
        return sent + self.lease_s - min(MAX_MARGIN_S, self.lease_s / 4)

    def holder(self, item: str) -> str | None:
        """The replica holding the item's lease, if any."""
        raw = self.client.get(self.lease_key(item))
        return None if raw is None else as_text(raw)

    def beat(self, now: float | None = None) -> int:
        """Heartbeat this replica and prune the silent ones; live replicas, this one included."""
        now = time.time() if now is None else now
        pipe = self.client.pipeline(transaction=False)
        pipe.zadd(self.replicas_key, {self.owner: now})
        pipe.zremrangebyscore(self.replicas_key, "-inf", now - self.replica_ttl)
        pipe.zcard(self.replicas_key)
        return max(1, int(pipe.execute()[2]))

    def leave(self) -> None:
        """Leave the replica set (on a clean stop), so the others' share grows at once."""
        self.client.zrem(self.replicas_key, self.owner)


class LeaseStop(threading.Event):
    """The stop event of one holder's thread: set by :meth:`set` (told to stop), and also
    from ``until`` (monotonic) on unless :meth:`hold` moves it on, so a holder whose lease
    could not be renewed stops by itself, whatever the thread renewing is stuck in."""

    def __init__(self, until: float, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.until = until
        self.clock = clock

    def hold(self, until: float) -> None:
        """A renewal succeeded: the holder may go on until ``until``."""
        self.until = max(self.until, until)

    def lapsed(self) -> bool:
        return self.clock() >= self.until

    def is_set(self) -> bool:
        return super().is_set() or self.lapsed()

    def wait(self, timeout: float | None = None) -> bool:
        remaining = max(0.0, self.until - self.clock())
        super().wait(remaining if timeout is None else min(timeout, remaining))
        return self.is_set()
