"""Leases on a real Redis: taken once, renewed and released only by the owner, expiring;
the fair share and the claim plan (pure)."""

from __future__ import annotations

import time

import redis

from elastic_inference.core import keys
from elastic_inference.core.leases import Leases, LeaseStop, fair_share, plan


def track_leases(client: redis.Redis, owner: str, **kwargs: float) -> Leases:
    return Leases(client, owner, keys.track_lease, keys.track_replicas(), **kwargs)


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
    a = track_leases(redis_client, "replica-a", lease_s=5.0)
    b = track_leases(redis_client, "replica-b", lease_s=5.0)
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
    a = track_leases(redis_client, "replica-a", lease_s=0.2)
    b = track_leases(redis_client, "replica-b", lease_s=0.2)
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
    a = track_leases(redis_client, "replica-a", replica_ttl=5.0)
    b = track_leases(redis_client, "replica-b", replica_ttl=5.0)
    assert a.beat(now=1000.0) == 1
    assert b.beat(now=1001.0) == 2
    assert a.beat(now=1007.0) == 1  # b last beat 6 s ago: gone
    a.leave()
    assert redis_client.zcard(keys.track_replicas()) == 0


def test_a_replica_cap_bounds_the_share() -> None:
    capped = plan(["a", "b", "c", "d", "e"], ["a", "b", "c"], 1, cap=2)
    assert (capped.share, capped.release, capped.claim) == (2, ("c",), ())
    assert fair_share(10, 2, cap=3) == 3 and fair_share(4, 2, cap=16) == 2
    assert fair_share(4, 1, cap=0) == 0


def test_a_holder_stops_by_itself_once_its_lease_may_have_lapsed() -> None:
    now = [100.0]
    stop = LeaseStop(until=104.0, clock=lambda: now[0])
    assert not stop.is_set()
    now[0] = 103.0
    stop.hold(106.0)  # renewed: goes on
    now[0] = 105.0
    assert not stop.is_set()
    now[0] = 106.0  # no renewal since: it stops, although nobody set it
    assert stop.is_set() and stop.wait(10.0)
    told = LeaseStop(until=1e9, clock=lambda: now[0])
    told.set()
    assert told.is_set()


def test_waiting_on_a_lease_stop_ends_at_the_lapse() -> None:
    stop = LeaseStop(until=time.monotonic() + 0.2)
    started = time.monotonic()
    assert stop.wait(30.0)
    assert time.monotonic() - started < 20.0  # not the 30 s asked for


def test_a_holder_keeps_a_margin_before_redis_can_expire_the_lease(
        redis_client: redis.Redis) -> None:
    leases = Leases(redis_client, "pool-a", keys.source_lease, keys.stream_pool(), lease_s=2.0)
    sent = time.monotonic()
    assert leases.acquire("cam1")
    until = leases.valid_until(sent)
    assert sent < until < sent + 2.0
    assert redis_client.pttl(keys.source_lease("cam1")) > (until - time.monotonic()) * 1000
