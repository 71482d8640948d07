"""The GCRA rate limiter on a real redis-server, with an injected clock (no sleeping)."""

from __future__ import annotations

import pytest
import redis

from elastic_inference.core import keys
from elastic_inference.core.ratelimit import Rate, RateLimiter

T0 = 1_800_000_000.0  # epoch seconds, any fixed instant


def test_rate_parsing() -> None:
    assert Rate.parse("100/min") == Rate(100, 60.0)
    assert Rate.parse(" 5 / s ") == Rate(5, 1.0)
    assert Rate.parse("1000/h") == Rate(1000, 3600.0)
    assert Rate.parse("off") is None and Rate.parse("0") is None and Rate.parse("0/min") is None
    assert Rate(100, 60.0).interval == pytest.approx(0.6)
    assert str(Rate.parse("60/min")) == "60/min"
    for bad in ("", "100", "100/day", "-1/min", "1.5/min", "x/min", "100/min/2"):
        with pytest.raises(ValueError, match="invalid rate"):
            Rate.parse(bad)


def test_burst_then_refusal_with_retry_after_of_one_interval(redis_client: redis.Redis) -> None:
    limiter = RateLimiter(redis_client, "jobs", Rate(10, 60.0))  # a burst of 10, then 1 per 6 s
    assert all(limiter.allow("10.0.0.1", T0).allowed for _ in range(10))
    refused = limiter.allow("10.0.0.1", T0)
    assert not refused.allowed
    assert refused.retry_after == pytest.approx(6.0, abs=0.01)
    assert refused.retry_after_header == "6"
    # A refusal is not counted: the wait stays the same, however often the client insists.
    for _ in range(5):
        assert limiter.allow("10.0.0.1", T0 + 1.0).retry_after == pytest.approx(5.0, abs=0.01)


def test_refill_over_time(redis_client: redis.Redis) -> None:
    limiter = RateLimiter(redis_client, "jobs", Rate(10, 60.0))
    for _ in range(10):
        assert limiter.allow("c", T0).allowed
    assert not limiter.allow("c", T0 + 5.9).allowed
    assert limiter.allow("c", T0 + 6.0).allowed  # one interval later, one more request
    assert not limiter.allow("c", T0 + 6.0).allowed
    # Idle for a whole period: the full burst again, and no more.
    later = T0 + 6.0 + 60.0
    assert sum(limiter.allow("c", later).allowed for _ in range(15)) == 10


def test_clients_and_buckets_are_independent(redis_client: redis.Redis) -> None:
    jobs = RateLimiter(redis_client, "jobs", Rate(3, 60.0))
    lists = RateLimiter(redis_client, "job-lists", Rate(3, 60.0))
    for _ in range(3):
        assert jobs.allow("10.0.0.1", T0).allowed
    assert not jobs.allow("10.0.0.1", T0).allowed
    assert jobs.allow("10.0.0.2", T0).allowed  # another client
    assert jobs.allow("2001:db8::1", T0).allowed
    assert lists.allow("10.0.0.1", T0).allowed  # the same client, another limit


def test_keys_expire_once_the_client_is_idle(redis_client: redis.Redis) -> None:
    limiter = RateLimiter(redis_client, "jobs", Rate(4, 2.0))  # drains in at most 2 s
    for _ in range(4):
        limiter.allow("idle", T0)
    key = keys.rate_limit("jobs", "idle")
    ttl = redis_client.pttl(key)
    assert 0 < ttl <= 2000, ttl  # no longer than it takes to earn the whole burst back
    limiter.allow("busy")  # the server's clock: its key lives on the same bounded TTL
    assert 0 < redis_client.pttl(keys.rate_limit("jobs", "busy")) <= 500
    limiter.reset("idle")
    assert not redis_client.exists(key)


def test_the_server_clock_is_used_by_default(redis_client: redis.Redis) -> None:
    limiter = RateLimiter(redis_client, "jobs", Rate(2, 3600.0))
    assert limiter.allow("who").allowed and limiter.allow("who").allowed
    refused = limiter.allow("who")
    assert not refused.allowed and refused.retry_after == pytest.approx(1800.0, abs=5.0)


def test_no_rate_means_no_limit_and_no_redis(redis_client: redis.Redis) -> None:
    limiter = RateLimiter(redis_client, "jobs", None)
    assert all(limiter.allow("x", T0).allowed for _ in range(1000))
    assert redis_client.dbsize() == 0


def test_arbitrary_who_is_hashed_into_a_safe_key() -> None:
    assert keys.rate_limit("jobs", "10.0.0.1") == "ei:rate:jobs:10.0.0.1"
    assert keys.rate_limit("jobs", "::1") == "ei:rate:jobs:::1"
    odd = keys.rate_limit("jobs", "a b\r\n*")
    assert odd.startswith("ei:rate:jobs:sha256-") and len(odd) == len("ei:rate:jobs:sha256-") + 64
    assert keys.rate_limit("jobs", "") != keys.rate_limit("jobs", " ")
