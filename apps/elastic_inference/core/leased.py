"""A lossless FIFO with leases: the reliable-queue pattern with a visibility timeout.

Live frames may be trimmed from a full queue or dropped as stale; analysis-job frames (and
pending jobs) may not. Taking a message *leases* it until a deadline instead of removing it,
the taker acknowledges it once its work is stored, and a lease that runs out (the taker was
killed or hangs) puts the message back at the head of the queue for another taker.

Three keys per queue: a LIST of message ids (the order), a HASH id -> body, a ZSET id -> lease
deadline. Every body belongs to an id that is either in the LIST or in the ZSET. Ids are
``OWNER`` or ``OWNER:PART`` (a job id, or a job id and a frame number), so everything one owner
queued can be found and discarded at once. The three keys share one Redis Cluster hash slot
(``ei:jobq:{people}``, ``:msg``, ``:leased``: core/keys.py), and the scripts below use exactly
these keys.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import redis

from . import keys
from .redisconn import RedisClient, run_script
from .text import as_text

#: Lease the oldest ``count`` messages, after putting expired leases back at the head.
#: KEYS[1] id LIST, KEYS[2] body HASH, KEYS[3] lease ZSET; ARGV[1] lease seconds, ARGV[2] count.
#: Returns id1, body1, id2, body2, ... The server's clock sets deadlines, so takers with skewed
#: clocks agree; an id whose body is gone (discarded) is dropped on the way.
_LEASE_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1e6
local expired = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', now)
for i = #expired, 1, -1 do
  redis.call('ZREM', KEYS[3], expired[i])
  redis.call('LPUSH', KEYS[1], expired[i])
end
local deadline = now + tonumber(ARGV[1])
local out = {}
local want = tonumber(ARGV[2])
while #out < 2 * want do
  local id = redis.call('LPOP', KEYS[1])
  if not id then break end
  local body = redis.call('HGET', KEYS[2], id)
  if body then
    redis.call('ZADD', KEYS[3], deadline, id)
    out[#out + 1] = id
    out[#out + 1] = body
  end
end
return out
"""

#: Append messages: each body, then its id at the tail. KEYS[1] id LIST, KEYS[2] body HASH;
#: ARGV id1, body1, id2, body2, ... A script rather than MULTI so that pushes to several queues
#: (several hash slots in a Redis Cluster) share one pipelined round trip.
_PUSH_LUA = """
for i = 1, #ARGV, 2 do
  redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 1])
  redis.call('RPUSH', KEYS[1], ARGV[i])
end
return 1
"""

#: Push back the deadline of leases still held (``XX``: never re-create an acknowledged one).
#: KEYS[1] lease ZSET; ARGV[1] lease seconds, ARGV[2..] ids. Returns how many were held.
_EXTEND_LUA = """
local t = redis.call('TIME')
local deadline = tonumber(t[1]) + tonumber(t[2]) / 1e6 + tonumber(ARGV[1])
local n = 0
for i = 2, #ARGV do
  n = n + redis.call('ZADD', KEYS[1], 'XX', 'CH', deadline, ARGV[i])
end
return n
"""

#: Give back leases still held, at the head and in order; an id no longer leased (acknowledged
#: or discarded meanwhile) is not put back. KEYS[1] id LIST, KEYS[2] lease ZSET; ARGV ids.
#: Returns how many went back.
_RELEASE_LUA = """
local n = 0
for i = #ARGV, 1, -1 do
  if redis.call('ZREM', KEYS[2], ARGV[i]) == 1 then
    redis.call('LPUSH', KEYS[1], ARGV[i])
    n = n + 1
  end
end
return n
"""

#: Forget every message of the given owners, waiting or leased, and any id left without a body.
#: KEYS[1] id LIST, KEYS[2] body HASH, KEYS[3] lease ZSET; ARGV owners (the part of an id
#: before its first ':'). Returns how many messages (bodies) were removed. One pass over the
#: LIST and the ZSET (the LIST is rebuilt, in order, only if something goes): both stay short,
#: as back-pressure bounds what is waiting and workers what is leased.
_DISCARD_LUA = """
local owners = {}
for i = 1, #ARGV do owners[ARGV[i]] = true end
local function doomed(id)
  return owners[string.match(id, '^[^:]+')] ~= nil
end
local removed = 0
local kept = {}
local ids = redis.call('LRANGE', KEYS[1], 0, -1)
for _, id in ipairs(ids) do
  if doomed(id) then
    removed = removed + redis.call('HDEL', KEYS[2], id)
  elseif redis.call('HEXISTS', KEYS[2], id) == 1 then
    kept[#kept + 1] = id
  end
end
if #kept < #ids then
  redis.call('DEL', KEYS[1])
  for i = 1, #kept, 1000 do
    redis.call('RPUSH', KEYS[1], unpack(kept, i, math.min(i + 999, #kept)))
  end
end
for _, id in ipairs(redis.call('ZRANGE', KEYS[3], 0, -1)) do
  if doomed(id) then
    redis.call('ZREM', KEYS[3], id)
    removed = removed + redis.call('HDEL', KEYS[2], id)
  end
end
return removed
"""



def owner_of(message_id: str) -> str:
    """The owner part of a message id (``j0123456789ab:40`` -> ``j0123456789ab``)."""
    return message_id.split(":", 1)[0]


class LeasedQueue:
    """A lossless FIFO with leases: a LIST of ids, a HASH of bodies, a ZSET of lease deadlines."""

    def __init__(self, client: RedisClient, list_key: str, bodies_key: str,
                 leases_key: str) -> None:
        self.client = client
        self.keys = [list_key, bodies_key, leases_key]
        self._push = client.register_script(_PUSH_LUA)
        self._lease = client.register_script(_LEASE_LUA)
        self._extend = client.register_script(_EXTEND_LUA)
        self._release = client.register_script(_RELEASE_LUA)
        self._discard = client.register_script(_DISCARD_LUA)

    @classmethod
    def for_type(cls, client: RedisClient, infer_type: str) -> LeasedQueue:
        """The job-frame queue of one inference type."""
        return cls(client, keys.job_queue(infer_type), keys.job_queue_messages(infer_type),
                   keys.job_queue_leases(infer_type))

    @classmethod
    def pending_jobs(cls, client: RedisClient) -> LeasedQueue:
        """Job ids waiting for an analysis runner."""
        return cls(client, keys.jobs_pending(), keys.jobs_pending_messages(),
                   keys.jobs_pending_leases())

    def push(self, items: Sequence[tuple[str, bytes]],
             pipe: redis.client.Pipeline | None = None) -> None:
        """Append ``(id, body)`` messages in one atomic step (ids are unique per message); on
        ``pipe`` (a pipeline without transaction) to share the round trip with other writes."""
        if not items:
            return
        args = [part for item in items for part in item]
        if pipe is None:
            self._push(keys=self.keys[:2], args=args)
        else:
            run_script(self._push, self.keys[:2], args, pipe)

    def lease(self, count: int, timeout: float) -> list[tuple[str, bytes]]:
        """Take up to ``count`` messages for ``timeout`` seconds; ack them before it runs out."""
        raw = self._lease(keys=self.keys, args=[timeout, count])
        return [(as_text(raw[i]), raw[i + 1]) for i in range(0, len(raw), 2)]

    def extend(self, ids: Sequence[str], timeout: float) -> int:
        """Renew leases still held (a long task); returns how many were."""
        if not ids:
            return 0
        return int(self._extend(keys=[self.keys[2]], args=[timeout, *ids]))

    def release(self, ids: Sequence[str]) -> int:
        """Give leased messages back at once, at the head (a taker stopping cleanly); ids no
        longer leased stay out. Returns how many went back."""
        if not ids:
            return 0
        return int(self._release(keys=[self.keys[0], self.keys[2]], args=list(ids)))

    def ack(self, ids: Sequence[str], pipe: redis.client.Pipeline | None = None) -> None:
        """Done with these messages: forget them (on ``pipe`` to share a round trip)."""
        if not ids:
            return
        target = pipe if pipe is not None else self.client.pipeline(transaction=False)
        target.zrem(self.keys[2], *ids)
        target.hdel(self.keys[1], *ids)
        if pipe is None:
            target.execute()

    def discard(self, owners: Iterable[str]) -> int:
        """Forget every message of ``owners`` (deleted jobs), waiting or leased, in one atomic
        step, so none is counted as waiting afterwards; returns how many there were."""
        owners = list(owners)
        if not owners:
            return 0
        return int(self._discard(keys=self.keys, args=owners))

    def owners(self) -> set[str]:
        """Owners of every message held (waiting, leased or only a body): for sweeping."""
        found = {owner_of(as_text(i)) for i in self.client.lrange(self.keys[0], 0, -1)}
        found |= {owner_of(as_text(i)) for i in self.client.zrange(self.keys[2], 0, -1)}
        found |= {owner_of(as_text(k)) for k in self.client.hkeys(self.keys[1])}
        return found

    def waiting(self) -> int:
        """Messages not yet taken (leased ones are not counted)."""
        return int(self.client.llen(self.keys[0]))
