"""EventStore on a real Redis: records with snapshots, retention trim, snapshot expiry, query
filters, newest-first pagination and the bounded scan (doc/analytics.md, "Events")."""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any

import pytest
import redis

from elastic_inference.core import eventstore, keys
from elastic_inference.core.errors import InvalidMessage
from elastic_inference.core.eventstore import EventQuery, EventRecord, EventStore

pytestmark = pytest.mark.integration


def event(n: int = 0, stream: str = "cam1", rule: str = "door", kind: str = "enter",
          direction: str = "") -> EventRecord:
    return EventRecord("", stream, "people", rule, kind, direction, 7 + n, "person", 40 + n,
                       1764670000.0 + n, (0.1, 0.2, 0.15, 0.4))


def test_encode_decode_round_trip_and_damage_is_refused() -> None:
    e = event(direction="")
    back = EventRecord.decode("5-0", e.encode())
    assert back == replace(e, id="5-0")
    assert back.to_json()["id"] == "5-0" and back.to_json()["box"] == [0.1, 0.2, 0.15, 0.4]
    for bad in ['{"stream": "cam1"}', "[1]", "{oops", e.encode().replace('"enter"', '"jump"'),
                e.encode().replace('"track_id":7', '"track_id":"7"')]:
        with pytest.raises(InvalidMessage):
            EventRecord.decode("5-0", bad)


def test_record_stores_each_event_with_its_snapshot_expiring_with_retention(
        redis_client: redis.Redis) -> None:
    store = EventStore(redis_client, retention=600)
    ids = store.record([(event(0), b"jpeg-0"), (event(1, kind="cross", direction="a->b"),
                                                b"jpeg-1")])
    assert len(ids) == 2 and ids[0] != ids[1]
    assert store.snapshot(ids[1]) == b"jpeg-1"
    assert 590 <= redis_client.ttl(keys.event_snapshot(ids[0])) <= 600
    got = store.get(ids[1])
    assert got is not None and got.id == ids[1] and got.direction == "a->b"
    assert store.get("1-0") is None and store.snapshot("1-0") is None


def test_events_older_than_the_retention_are_trimmed(redis_client: redis.Redis) -> None:
    store = EventStore(redis_client, retention=1.0)
    old = store.record([(event(0), b"a"), (event(1), b"b")])
    assert redis_client.xlen(keys.events()) == 2
    time.sleep(1.5)  # the next write finds the first two beyond the retention
    new = store.record([(event(2), b"c")])
    assert [e.id for e in store.query(EventQuery()).events] == new
    assert store.get(old[0]) is None


def test_the_length_cap_bounds_the_stream(redis_client: redis.Redis) -> None:
    store = EventStore(redis_client, maxlen=100)
    for _ in range(10):
        store.record([(event(n), b"j") for n in range(100)])
    # Approximate: whole nodes of 100 entries go, so at most cap + one node remain.
    assert redis_client.xlen(keys.events()) <= 200


def test_query_filters_newest_first_and_pages_with_a_cursor(redis_client: redis.Redis) -> None:
    store = EventStore(redis_client)
    ids = []
    for n in range(30):
        ids += store.record([(event(n, stream=f"cam{n % 3}", rule=("door", "gate")[n % 2],
                                    kind=("enter", "cross")[n % 2],
                                    direction=("", "b->a")[n % 2]), b"j")])
    everything = store.query(EventQuery(limit=200))
    assert [e.id for e in everything.events] == ids[::-1] and everything.next is None
    cam1 = store.query(EventQuery(stream="cam1", limit=200)).events
    assert [e.seq for e in cam1] == [40 + n for n in range(29, -1, -1) if n % 3 == 1]
    gate = store.query(EventQuery(rule="gate", kind="cross", limit=200)).events
    assert len(gate) == 15 and {(e.rule, e.kind) for e in gate} == {("gate", "cross")}
    assert store.query(EventQuery(rule="gate", kind="enter")).events == ()
    pages, cursor = [], None
    while True:
        page = store.query(EventQuery(limit=4, cursor=cursor))
        pages.append([e.id for e in page.events])
        if page.next is None:
            break
        cursor = page.next
    assert [i for p in pages for i in p] == ids[::-1] and max(map(len, pages)) == 4
    # A time range is an id range: since and until in epoch seconds, both inclusive.
    middle = int(ids[10].split("-")[0]) / 1000
    ranged = store.query(EventQuery(since=middle, until=middle, limit=200)).events
    assert ids[10] in [e.id for e in ranged]
    assert all(int(e.id.split("-")[0]) == int(middle * 1000) for e in ranged)


def test_a_filter_matching_nothing_reads_a_bounded_amount_and_gives_a_cursor(
        redis_client: redis.Redis, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(eventstore, "MAX_SCAN", 50)
    monkeypatch.setattr(eventstore, "SCAN_PAGE", 20)
    store = EventStore(redis_client)
    wanted = store.record([(event(0, stream="rare"), b"j")])
    for _ in range(2):
        store.record([(event(n), b"j") for n in range(60)])
    reads: list[int] = []
    real = redis_client.xrevrange

    def counted(*args: Any, **kw: Any) -> Any:
        found = real(*args, **kw)
        reads.append(len(found))
        return found

    monkeypatch.setattr(redis_client, "xrevrange", counted)
    first = store.query(EventQuery(stream="rare"))
    assert first.events == () and first.next is not None  # 50 read, none matched: go on
    assert sum(reads) == 50
    pages = [first]
    while pages[-1].next is not None:
        pages.append(store.query(EventQuery(stream="rare", cursor=pages[-1].next)))
    assert [e.id for p in pages for e in p.events] == wanted
    assert len(pages) == 3 and sum(reads) == 121


def test_a_damaged_entry_is_skipped(redis_client: redis.Redis) -> None:
    store = EventStore(redis_client)
    good = store.record([(event(0), b"j")])
    redis_client.xadd(keys.events(), {"event": b"{oops"})
    assert [e.id for e in store.query(EventQuery()).events] == good


def test_snapshots_beyond_the_cap_are_deleted_oldest_first_and_events_stay(
        redis_client: redis.Redis) -> None:
    store = EventStore(redis_client, retention=600, snapshots=5)
    ids: list[str] = []
    for n in range(8):
        ids += store.record([(event(n), f"jpeg-{n}".encode())])
    ids += store.record([(event(8), b"jpeg-8"), (event(9), b""), (event(10), b"jpeg-10")])
    kept = ids[-5:-2] + ids[-1:]  # the event without a JPEG had no snapshot to keep
    assert [i for i in ids if store.snapshot(i) is not None] == [ids[5], ids[6], ids[7],
                                                                  ids[8], ids[10]]
    assert store.snapshot(ids[10]) == b"jpeg-10" and store.snapshot(ids[0]) is None
    assert all(store.snapshot(i) is not None for i in kept)
    # Every event keeps its record, snapshot or not.
    assert [e.id for e in store.query(EventQuery(limit=200)).events] == ids[::-1]
    assert redis_client.llen(keys.event_snapshots()) == 5
    assert 590 <= redis_client.ttl(keys.event_snapshots()) <= 600


def test_snapshot_keys_stay_bounded_under_a_burst(redis_client: redis.Redis) -> None:
    """Many events recorded in batches, and a cap lowered at a restart: the count of snapshot
    keys in Redis never exceeds the cap after a write, and the newest are the ones kept."""
    store = EventStore(redis_client, snapshots=300)
    ids: list[str] = []
    for batch in range(40):
        ids += store.record([(event(n), b"j" * 1000) for n in range(25)])
        assert len(list(redis_client.scan_iter(match="ei:event-snapshot:*", count=1000))) \
            <= 300, batch
    assert store.snapshot(ids[-300]) is not None and store.snapshot(ids[-301]) is None
    lowered = EventStore(redis_client, snapshots=10)  # more than one DEL chunk to delete
    newest = lowered.record([(event(99), b"last")])
    assert len(list(redis_client.scan_iter(match="ei:event-snapshot:*", count=1000))) == 10
    assert lowered.snapshot(newest[0]) == b"last" and lowered.snapshot(ids[-9]) is not None
    assert lowered.snapshot(ids[-10]) is None
    assert redis_client.xlen(keys.events()) == 1001
