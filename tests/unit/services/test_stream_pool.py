"""One stream-pool replica's turns on a real Redis with a clock of the test's: leases taken,
renewed, lost, lapsed and given back, and what each does to the readers and the registry.
The readers here read a source that cannot be opened (shown ``failed``), so no video is
decoded; tests/integration/test_stream_pool.py runs real ones."""

from __future__ import annotations

from pathlib import Path

import redis

from elastic_inference.core import keys
from elastic_inference.core.registry import StreamRegistry
from elastic_inference.core.runtime import ServiceRuntime
from elastic_inference.core.settings import StreamSettings
from elastic_inference.core.sources import SourceConfig, SourceStore
from elastic_inference.services.stream import StreamPool
from tests.processes import wait_for


def replica(client: redis.Redis, tmp_path: Path, now: list[float]) -> StreamPool:
    settings = StreamSettings(pool=True, media_dir=tmp_path, lease_seconds=4.0,
                              replica_id="pool-a")
    return StreamPool(settings, ServiceRuntime("pool-test"), client, clock=lambda: now[0])


def entry(client: redis.Redis, sid: str) -> dict[str, object] | None:
    return next((m.info for m in StreamRegistry(client).members() if m.id == sid), None)


def test_a_lease_lost_or_lapsed_stops_the_reader_and_leaves_the_entry_alone(
        redis_client: redis.Redis, tmp_path: Path) -> None:
    now = [1000.0]
    store = SourceStore(redis_client)
    store.put(SourceConfig("cam", "missing.avi", ("people",)))
    pool = replica(redis_client, tmp_path, now)
    try:
        pool.turn()
        assert redis_client.get(keys.source_lease("cam")) == b"pool-a"
        shown = wait_for(lambda: entry(redis_client, "cam"), 10, "the failed source shown")
        assert shown["state"] == "failed" and shown["replica"] == "pool-a"
        assert "missing.avi" in str(shown["error"])

        # Another replica holds the lease now: the reader stops, nothing of the other's is
        # touched (its lease, the entry it may be writing).
        redis_client.set(keys.source_lease("cam"), "pool-b")
        pool.turn()
        assert "cam" not in pool.readers
        assert redis_client.get(keys.source_lease("cam")) == b"pool-b"
        assert entry(redis_client, "cam") is not None
        assert pool.metrics.lost._value.get() == 1

        # Free again: taken; then no renewal for longer than the lease allows (the clock
        # jumps, as for a replica whose Redis stopped answering): the reader stops by itself.
        redis_client.delete(keys.source_lease("cam"))
        pool.turn()
        reader = pool.readers["cam"]
        now[0] += 3.5  # past lease - margin (4 - 1 s)
        assert reader.thread is not None
        reader.thread.join(10)
        assert not reader.thread.is_alive()
        pool._reap()
        assert "cam" not in pool.readers and pool.metrics.lost._value.get() == 2

        # Deleted: given back and unregistered.
        pool.turn()
        assert "cam" in pool.readers
        store.delete("cam")
        pool.turn()
        assert pool.readers == {}
        assert redis_client.get(keys.source_lease("cam")) is None
        assert entry(redis_client, "cam") is None
    finally:
        pool.shutdown()
    assert redis_client.zcard(keys.stream_pool()) == 0


def test_a_changed_source_restarts_keeping_its_lease_and_the_cap_holds(
        redis_client: redis.Redis, tmp_path: Path) -> None:
    now = [1000.0]
    store = SourceStore(redis_client)
    for sid in ("a", "b", "c"):
        store.put(SourceConfig(sid, "missing.avi", ("people",)))
    pool = StreamPool(StreamSettings(pool=True, media_dir=tmp_path, max_sources=2,
                                     replica_id="pool-a"),
                      ServiceRuntime("pool-test"), redis_client, clock=lambda: now[0])
    try:
        pool.turn()
        assert sorted(pool.readers) == ["a", "b"]  # its cap, in id order
        first = pool.readers["a"]
        store.put(SourceConfig("a", "missing.avi", ("face",)))
        pool.turn()
        assert pool.readers["a"] is not first and pool.readers["a"].config.types == ("face",)
        assert first.thread is not None and not first.thread.is_alive()
        assert redis_client.get(keys.source_lease("a")) == b"pool-a"
        assert redis_client.get(keys.source_lease("c")) is None
        assert pool.metrics.sources._value.get() == 2
    finally:
        pool.shutdown()
    assert [redis_client.get(keys.source_lease(s)) for s in "abc"] == [None, None, None]


def test_a_url_the_policy_refuses_is_shown_failed_without_its_password(
        redis_client: redis.Redis, tmp_path: Path) -> None:
    now = [1000.0]
    SourceStore(redis_client).put(SourceConfig("gate", "rtsp://admin:s3cret@10.0.0.7:554/live",
                                               ("people",)))
    pool = replica(redis_client, tmp_path, now)  # EI_SOURCE_ALLOW empty: no URL allowed
    try:
        pool.turn()
        shown = wait_for(lambda: entry(redis_client, "gate"), 10, "the refused source shown")
        assert shown["state"] == "failed" and shown["error"]
        assert "s3cret" not in str(shown) and "***" in str(shown["source"])
    finally:
        pool.shutdown()
