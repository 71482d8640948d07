"""The frame queue against a real redis-server."""

from __future__ import annotations

import threading
import time

import pytest
import redis

from elastic_inference.core.queue import FrameQueue, push_to_types

pytestmark = pytest.mark.integration


def test_bound_holds_and_overflow_is_counted(redis_client: redis.Redis) -> None:
    q = FrameQueue(redis_client, "face", maxlen=5)
    lengths = [q.push(f"m{i}".encode()).length for i in range(12)]
    assert max(lengths) == 5 and q.length() == 5
    st = q.stats()
    assert st.pushed == 12 and st.drops["overflow"] == 7
    # The oldest were trimmed: what remains is the newest five, in order.
    assert redis_client.lrange(q.key, 0, -1) == [f"m{i}".encode() for i in range(7, 12)]


def test_bound_holds_with_concurrent_producers(redis_url: str) -> None:
    def produce() -> None:
        q = FrameQueue(redis.Redis.from_url(redis_url), "people", maxlen=8)
        for i in range(200):
            q.push(str(i).encode())

    threads = [threading.Thread(target=produce) for _ in range(4)]
    seen = []
    watcher = FrameQueue(redis.Redis.from_url(redis_url), "people", maxlen=8)
    for t in threads:
        t.start()
    while any(t.is_alive() for t in threads):
        seen.append(watcher.length())
    for t in threads:
        t.join()
    st = watcher.stats()
    assert max(seen) <= 8
    assert st.pushed == 800 and st.drops["overflow"] == 800 - st.length


def test_pop_batch_takes_up_to_the_limit_in_order(redis_client: redis.Redis) -> None:
    q = FrameQueue(redis_client, "car", maxlen=100)
    for i in range(10):
        q.push(bytes([i]))
    assert q.pop_batch(4, timeout=1) == [bytes([i]) for i in range(4)]
    assert q.pop_batch(100, timeout=1) == [bytes([i]) for i in range(4, 10)]


def test_pop_blocks_instead_of_spinning_and_wakes_on_push(redis_client: redis.Redis,
                                                          redis_url: str) -> None:
    q = FrameQueue(redis_client, "car")
    before = int(redis_client.info("stats")["total_commands_processed"])
    t0 = time.monotonic()
    assert q.pop_batch(8, timeout=1) == []
    waited = time.monotonic() - t0
    after = int(redis_client.info("stats")["total_commands_processed"])
    assert waited >= 0.9
    assert after - before <= 3  # one BLPOP (plus the INFO call), not a polling loop

    def later() -> None:
        time.sleep(0.3)
        FrameQueue(redis.Redis.from_url(redis_url), "car").push(b"late")

    threading.Thread(target=later).start()
    t0 = time.monotonic()
    assert q.pop_batch(8, timeout=30) == [b"late"]
    assert time.monotonic() - t0 < 15  # woken by the push, long before its timeout


def test_push_to_types_feeds_each_queue_once(redis_client: redis.Redis) -> None:
    qs = [FrameQueue(redis_client, t, maxlen=1) for t in ("face", "people")]
    push_to_types(qs, [b"a", b"b"])
    results = push_to_types(qs, [b"c", b"d"])
    assert [r.dropped for r in results] == [1, 1]
    assert [q.pop_batch(5, 1) for q in qs] == [[b"c"], [b"d"]]


def test_worker_drop_counts_are_shared(redis_client: redis.Redis) -> None:
    q = FrameQueue(redis_client, "face")
    q.count_drops("stale", 3)
    q.count_drops("invalid")
    assert q.stats().drops == {"overflow": 0, "stale": 3, "invalid": 1}
    with pytest.raises(ValueError):
        q.count_drops("bogus")
