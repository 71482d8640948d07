"""Zone and line events kept in Redis with their snapshots, and read back for the API.

Every event of every stream is one entry of the STREAM ``ei:events`` (its entry id is the event
id, so a time range is an id range), field ``event`` = the JSON of :class:`EventRecord` without
the id. Writes trim by age (``MINID``, the retention) and by an approximate length cap, so
neither a quiet week nor a burst grows it without bound. The age trim is exact (few events a
second at most: trimming inside a node is cheap), the length cap approximate. A snapshot is a
JPEG in ``ei:event-snapshot:{id}`` expiring after the same retention and bounded by count as
well: the LIST ``ei:event-snapshots`` holds their keys in the order written, and a write deletes
the oldest beyond the cap, so a busy scene cannot take Redis' memory (an event whose snapshot
went keeps its record). doc/analytics.md ("Wire: tracks, counts and events") is the contract.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from . import keys
from .errors import InvalidMessage
from .redisconn import RedisClient
from .text import as_text

log = logging.getLogger(__name__)

EVENT_KINDS = ("enter", "leave", "dwell", "cross")
DIRECTIONS = ("", "a->b", "b->a")
#: Default retention of events and their snapshots: a week.
DEFAULT_RETENTION_S = 7 * 86400.0
#: Default approximate cap on the events stream (each entry is about 300 bytes; snapshots
#: are separate keys that expire on their own).
DEFAULT_MAXLEN = 100_000
#: Default cap on the snapshots kept: 2,000 of about 50 kB is about 100 MB of Redis memory
#: (doc/analytics.md, "Memory").
DEFAULT_SNAPSHOTS = 2000
#: Snapshot keys deleted per DEL when trimming (Lua's unpack has a limit of a few thousand).
_DEL_CHUNK = 500
MAX_PAGE = 200
#: Entries read per XREVRANGE while filtering, and the most one query reads: a filter that
#: matches nothing costs at most this much and still answers with a cursor to go on from.
SCAN_PAGE = 500
MAX_SCAN = 5000
_BIGGEST_SEQ = 2**64 - 1


#: Store new snapshots, delete the oldest beyond the cap and trim the events stream by length,
#: in one step (a script in a redis-py pipeline would cost a SCRIPT EXISTS round trip more).
#: KEYS[1] the events STREAM, KEYS[2] the index LIST of snapshot keys (oldest first), KEYS[3..]
#: the new snapshot keys. ARGV[1] the stream's approximate MAXLEN, ARGV[2] the cap on snapshots
#: kept, ARGV[3] their expiry in seconds, ARGV[4] keys per DEL, ARGV[5..] the JPEGs, one per
#: new key. The keys deleted are those the index holds, which this script wrote from its KEYS.
#: The index expires with the newest snapshot. Returns how many snapshots were deleted.
_STORE_SNAPSHOTS_LUA = """
redis.call('XTRIM', KEYS[1], 'MAXLEN', '~', ARGV[1])
if #KEYS < 3 then return 0 end
local cap, ttl, chunk = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
for i = 3, #KEYS do
  redis.call('SET', KEYS[i], ARGV[i + 2], 'EX', ttl)
  redis.call('RPUSH', KEYS[2], KEYS[i])
end
redis.call('EXPIRE', KEYS[2], ttl)
local over = redis.call('LLEN', KEYS[2]) - cap
if over <= 0 then return 0 end
for first = 0, over - 1, chunk do
  local last = math.min(first + chunk, over) - 1
  redis.call('DEL', unpack(redis.call('LRANGE', KEYS[2], first, last)))
end
redis.call('LTRIM', KEYS[2], over, -1)
return over
"""


@dataclass(frozen=True)
class EventRecord:
    """One event as stored and answered; ``id`` is its stream entry id ("" before XADD)."""

    id: str
    stream: str
    type: str
    rule: str
    kind: str
    direction: str
    track_id: int
    label: str
    seq: int
    ts: float
    box: tuple[float, float, float, float]

    def to_json(self) -> dict[str, Any]:
        """The event as the API and the sinks spell it (id first)."""
        out = asdict(self)
        out["box"] = list(self.box)
        return out

    def encode(self) -> str:
        """The stored field: the JSON without the id (the entry id is the id)."""
        body = self.to_json()
        del body["id"]
        return json.dumps(body, separators=(",", ":"))

    @classmethod
    def decode(cls, event_id: str, text: bytes | str) -> EventRecord:
        """The record stored under ``event_id``; InvalidMessage if it is damaged."""
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise InvalidMessage(f"event {event_id}: not JSON: {exc}") from exc
        if not isinstance(data, dict):
            raise InvalidMessage(f"event {event_id}: not an object")
        try:
            record = cls(event_id, data["stream"], data["type"], data["rule"], data["kind"],
                         data["direction"], data["track_id"], data["label"], data["seq"],
                         data["ts"], tuple(data["box"]))
        except (KeyError, TypeError) as exc:
            raise InvalidMessage(f"event {event_id}: missing or bad field: {exc}") from exc
        record.check()
        return record

    def check(self) -> None:
        """InvalidMessage unless every field has its type and range."""
        strings = (self.stream, self.type, self.rule, self.kind, self.direction, self.label)
        ints = (self.track_id, self.seq)
        numbers = (self.ts, *self.box)
        if (not all(isinstance(v, str) for v in strings)
                or not all(isinstance(v, int) and not isinstance(v, bool) for v in ints)
                or len(self.box) != 4
                or not all(isinstance(v, (int, float)) and not isinstance(v, bool)
                           and math.isfinite(v) for v in numbers)
                or self.kind not in EVENT_KINDS or self.direction not in DIRECTIONS):
            raise InvalidMessage(f"event {self.id}: a field has the wrong type or value")


@dataclass(frozen=True)
class EventQuery:
    """What ``GET /api/events`` asks for: filters (None: any), a time range in epoch
    seconds, a page size and the last event id of the previous page."""

    stream: str | None = None
    rule: str | None = None
    kind: str | None = None
    since: float | None = None
    until: float | None = None
    limit: int = 50
    cursor: str | None = None

    def matches(self, event: EventRecord) -> bool:
        return ((self.stream is None or event.stream == self.stream)
                and (self.rule is None or event.rule == self.rule)
                and (self.kind is None or event.kind == self.kind))


@dataclass(frozen=True)
class EventPage:
    """Events newest first, and where the next page starts (None: nothing older)."""

    events: tuple[EventRecord, ...]
    next: str | None


class EventStore:
    """Records events with their snapshots and answers queries over them."""

    def __init__(self, client: RedisClient, retention: float = DEFAULT_RETENTION_S,
                 maxlen: int = DEFAULT_MAXLEN, snapshots: int = DEFAULT_SNAPSHOTS) -> None:
        self.client = client
        self.retention = retention
        self.maxlen = maxlen
        self.snapshots = snapshots
        self._store_snapshots = client.register_script(_STORE_SNAPSHOTS_LUA)

    def record(self, events: Sequence[tuple[EventRecord, bytes]],
               now: float | None = None) -> list[str]:
        """Store ``(event, snapshot JPEG)`` pairs; their ids, in order. Two round trips:
        the XADDs (which assign the ids), then the snapshots with the deletion of the oldest
        beyond the cap, and the length trim."""
        if not events:
            return []
        now = time.time() if now is None else now
        min_id = str(int((now - self.retention) * 1000))
        pipe = self.client.pipeline(transaction=False)
        for event, _ in events:
            # Exact MINID (events are few): the retention holds to the millisecond.
            pipe.xadd(keys.events(), {"event": event.encode()}, minid=min_id, approximate=False)
        ids = [as_text(i) for i in pipe.execute()]
        # An undrawable frame has no JPEG: its event is kept without a snapshot.
        shots = [(keys.event_snapshot(i), jpeg) for i, (_, jpeg) in zip(ids, events, strict=True)
                 if jpeg]
        self._store_snapshots(
            keys=[keys.events(), keys.event_snapshots(), *(key for key, _ in shots)],
            args=[self.maxlen, self.snapshots, max(1, math.ceil(self.retention)), _DEL_CHUNK,
                  *(jpeg for _, jpeg in shots)])
        return ids

    def snapshot(self, event_id: str) -> bytes | None:
        """The event's JPEG, or None once it has expired (or never was)."""
        value = self.client.get(keys.event_snapshot(event_id))
        return bytes(value) if value is not None else None

    def get(self, event_id: str) -> EventRecord | None:
        """One event by id, or None."""
        raw = self.client.xrange(keys.events(), event_id, event_id, count=1)
        return _decoded(raw[0]) if raw else None

    def query(self, q: EventQuery) -> EventPage:
        """Events matching ``q``, newest first, at most ``q.limit``; reads at most
        :data:`MAX_SCAN` entries, so a filter matching little still answers promptly, with
        ``next`` to go on from where it stopped."""
        cursor = _entry_id(q.cursor) if q.cursor else None
        if cursor == (0, 0):  # nothing is older (and Redis refuses "(0-0" as an end)
            return EventPage((), None)
        high = f"({cursor[0]}-{cursor[1]}" if cursor else (
            "+" if q.until is None else f"{int(q.until * 1000)}-{_BIGGEST_SEQ}")
        low = "-" if q.since is None else f"{math.ceil(q.since * 1000)}-0"
        found: list[EventRecord] = []
        scanned = 0
        last: str | None = None
        while scanned < MAX_SCAN:
            count = min(SCAN_PAGE, MAX_SCAN - scanned)
            batch = self.client.xrevrange(keys.events(), high, low, count=count)
            for entry in batch:
                scanned += 1
                last = as_text(entry[0])
                event = _decoded(entry)
                if event is not None and q.matches(event):
                    found.append(event)
                    if len(found) == q.limit:
                        return EventPage(tuple(found), last)
            if len(batch) < count:
                return EventPage(tuple(found), None)
            high = "(" + str(last)
        return EventPage(tuple(found), last)


def _entry_id(text: str) -> tuple[int, int]:
    """``MS-SEQ`` as numbers (so ``000-0`` is ``0-0``); ValueError if it is not one."""
    ms, _, seq = text.partition("-")
    return int(ms), int(seq)


def _decoded(entry: tuple[Any, dict[Any, Any]]) -> EventRecord | None:
    event_id = as_text(entry[0])
    try:
        return EventRecord.decode(event_id, entry[1].get(b"event", b""))
    except InvalidMessage as exc:
        log.warning("events: skipping a damaged entry: %s", exc)
        return None
