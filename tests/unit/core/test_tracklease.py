"""Track leases on a real Redis: taken once, renewed and released only by the owner, expiring;
the fair share and the claim plan (pure)."""

from __future__ import annotations

import time

import redis

from elastic_inference.core import keys
from elastic_inference.core.tracklease import TrackLeases, fair_share, plan


def test_fair_share_rounds_up_and_survives_no_replicas() -> None:
    assert fair_share(0, 2) == 0
    assert fair_share(2, 2) == 1
    assert fair_share(3, 2) == 2
    assert fair_share(5, 0) == 5


def test_plan_claims_up_to_the_share_and_gives_back_the_rest() -> None:
    alone = plan(["a", "b", "c"], [], 1)
    assert (alone.share, alone.release, alone.claim) == (3, (), ("a", "b", "c"))
    # A second replica appeared: the one holding all three gives one back.
    crowded = plan(["a", "b", "c"], ["a", "b", "c"], 2)
    assert (crowded.share, crowded.release, crowded.claim) == (2, ("c",), ())
    # A stream that stopped is given back whatever the share.
    stopped = plan(["a"], ["a", "gone"], 1)
    assert (stopped.release, stopped.claim) == (("gone",), ())
    # Below the share: the free candidates are the live streams not held.
    below = plan(["a", "b", "c", "d"], ["b"], 2)
    assert (below.share, below.release, below.claim) == (2, (), ("a", "c", "d"))


def test_a_lease_has_one_owner_who_alone_renews_and_releases(
        redis_client: redis.Redis) -> None:
    a = TrackLeases(redis_client, "replica-a", lease_s=5.0)
    b = TrackLeases(redis_client, "replica-b", lease_s=5.0)
    assert a.acquire("cam1")
    assert not b.acquire("cam1")
    assert a.holder("cam1") == "replica-a"
    assert b.renew(["cam1"]) == set()
    assert a.renew(["cam1", "cam2"]) == {"cam1"}
    b.release(["cam1"])  # not b's: nothing happens
    assert a.holder("cam1") == "replica-a"
    a.release(["cam1"])
    assert a.holder("cam1") is None
    assert b.acquire("cam1")


def test_a_lease_not_renewed_expires_and_another_takes_it(redis_client: redis.Redis) -> None:
    a = TrackLeases(redis_client, "replica-a", lease_s=0.2)
    b = TrackLeases(redis_client, "replica-b", lease_s=0.2)
    assert a.acquire("cam1")
    ttl = redis_client.pttl(keys.track_lease("cam1"))
    assert 0 < ttl <= 200
    deadline = time.monotonic() + 10
    while not b.acquire("cam1"):
        assert time.monotonic() < deadline, "the lease never expired"
        time.sleep(0.05)
    assert a.renew(["cam1"]) == set()  # a paused past its lease: it must not renew b's
    assert b.holder("cam1") == "replica-b"


def test_replicas_heartbeat_and_silent_ones_are_pruned(redis_client: redis.Redis) -> None:
    a = TrackLeases(redis_client, "replica-a", replica_ttl=5.0)
    b = TrackLeases(redis_client, "replica-b", replica_ttl=5.0)
    assert a.beat(now=1000.0) == 1
    assert b.beat(now=1001.0) == 2
    assert a.beat(now=1007.0) == 1  # b last beat 6 s ago: gone
    a.leave()
    assert redis_client.zcard(keys.track_replicas()) == 0
