"""``ei track`` as real processes on a real Redis: results in ``ei:out:{stream}`` come out as
tracks with stable ids, in seq order although they arrive out of order; a line crossed is
counted; rules written through the RuleStore take effect; two replicas share the streams and
one killed with SIGKILL has its streams tracked by the other within 10 s; a Redis restart is
ridden through."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator

import pytest
import redis

from elastic_inference.core import keys
from elastic_inference.core.analytics.rules import Rule
from elastic_inference.core.broker import OutputBroker
from elastic_inference.core.registry import StreamRegistry
from elastic_inference.core.rulestore import RuleStore
from tests.outputs import publish
from tests.processes import Service, wait_for
from tests.redis_server import RedisServer
from tests.track_feed import FakeStream, entries, metrics, owned, result

pytestmark = pytest.mark.integration

GATE = Rule("gate", "line", ((0.5, 0.0), (0.5, 1.0)), ("person",))
LOT = Rule("lot", "zone", ((0.0, 0.0), (0.3, 0.0), (0.3, 1.0), (0.0, 1.0)), ())
#: Short leases so the tests run quickly (but the takeover test's); the default claim interval.
FAST = ["--track-lease", "3", "--claim-interval", "1"]


@pytest.fixture
def track(redis_url: str) -> Iterator[Service]:
    service = Service(["track", *FAST, "--replica-id", "t1"], {"EI_REDIS_URL": redis_url})
    yield service
    service.stop()


def test_results_come_out_as_tracks_in_order_with_counts(
        track: Service, redis_client: redis.Redis) -> None:
    RuleStore(redis_client).put("cam1", (GATE,))
    StreamRegistry(redis_client).beat("cam1", {"types": ["people"]})
    wait_for(lambda: owned(track) == 1, 30, "ei track to take the stream")
    assert redis_client.get(keys.track_lease("cam1")) == b"t1"
    broker = OutputBroker(redis_client)
    # A walk across the line, from left to right (b->a for a line drawn downwards), the
    # results arriving in swapped pairs as from two workers.
    walk = [result("cam1", s, 0.3 + 0.02 * s) for s in range(20)]
    for s in [0, *(1 + (i ^ 1) for i in range(18)), 19]:
        publish(broker, [(walk[s], b"\xff\xd8")])
    got = wait_for(lambda: (e := entries(redis_client, "cam1")) and e[-1]["seq"] >= 17 and e,
                   30, "the tracks of the walk")
    assert [e["seq"] for e in got] == list(range(len(got)))  # in order, none twice
    ids = {t["id"] for e in got for t in e["tracks"]}
    assert len(ids) == 1, ids  # one person, one id throughout
    first = got[0]
    assert (first["v"], first["stream"], first["type"], first["rules_version"]) == \
        (1, "cam1", "people", 1)
    assert got[-1]["counts"] == {"gate": {"a->b": 0, "b->a": 1}}
    assert redis_client.hgetall(keys.counts("cam1")) == {b"gate|b->a|person": b"1"}
    assert redis_client.get(keys.track_ids("cam1")) == b"%d" % ids.pop()
    seen = metrics(track)
    assert seen[("ei_line_crossings_total", (("direction", "b->a"), ("label", "person"),
                                             ("rule", "gate"), ("stream", "cam1")))] == 1
    assert seen[("ei_track_messages_total", ())] >= 18

    # New rules: the counts start again and the zone is counted and reported.
    RuleStore(redis_client).put("cam1", (GATE, LOT))
    wait_for(lambda: not redis_client.exists(keys.counts("cam1")), 10, "the counts reset")
    for s in range(20, 46):  # walks back, across the line and into the zone (x < 0.3)
        publish(broker, [(result("cam1", s, 0.7 - 0.02 * (s - 20)), b"\xff\xd8")])
    last = wait_for(lambda: (e := entries(redis_client, "cam1")) and e[-1]["seq"] >= 45 and
                    e[-1], 30, "tracks after the rules changed")
    assert last["rules_version"] == 2
    assert last["counts"]["gate"] == {"a->b": 1, "b->a": 0}
    assert last["counts"]["lot"] == {"occupancy": 1, "enter": 1, "leave": 0, "dwell": 0}
    assert redis_client.hgetall(keys.counts("cam1")) == {b"gate|a->b|person": b"1",
                                                         b"lot|enter|person": b"1"}
    assert metrics(track)[("ei_zone_occupancy", (("rule", "lot"), ("stream", "cam1")))] == 1
    assert track.stop() == 0
    assert redis_client.get(keys.track_lease("cam1")) is None  # given back on SIGTERM


def test_two_replicas_share_streams_and_take_over_a_killed_one(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    fakes = [FakeStream(redis_url, s) for s in ("cam1", "cam2")]
    for f in fakes:
        f.start()
    # The default lease and claim interval: the 10 s bound is the issue's, for the defaults.
    a = Service(["track", "--replica-id", "ra"], {"EI_REDIS_URL": redis_url})
    b = Service(["track", "--replica-id", "rb"], {"EI_REDIS_URL": redis_url})
    try:
        def spread() -> dict[str, str] | None:
            holders = {s: client.get(keys.track_lease(s)) for s in ("cam1", "cam2")}
            if owned(a) == 1 and owned(b) == 1 and set(holders.values()) == {b"ra", b"rb"}:
                return {s: h.decode() for s, h in holders.items() if h}
            return None
        holders = wait_for(spread, 60, "one stream per replica")
        victim = next(s for s, h in holders.items() if h == "ra")
        wait_for(lambda: client.xlen(keys.tracks(victim)) > 0, 30, f"tracks of {victim}")
        a.stop(sig=signal.SIGKILL)
        killed = time.monotonic()
        newest = client.xrevrange(keys.tracks(victim), count=1)[0][0]

        def taken_over() -> bool:
            fresh = client.xrange(keys.tracks(victim), min=f"({newest.decode()}")
            return client.get(keys.track_lease(victim)) == b"rb" and bool(fresh)
        wait_for(taken_over, 10, f"rb to track {victim} again", interval=0.1)
        took = time.monotonic() - killed
        assert took <= 10.0, took
        print(f"{victim} tracked again {took:.1f} s after the kill")
        assert owned(b) == 2
        # Ids go on from the counter: none of the new owner's ids was given before.
        before = {t["id"] for e in entries(client, victim) for t in e["tracks"]}
        assert before and max(before) <= int(client.get(keys.track_ids(victim)))
    finally:
        for service in (a, b):
            service.stop()
        for f in fakes:
            f.stop()
        client.close()


def test_a_redis_restart_is_ridden_through() -> None:
    server = RedisServer().start()
    fake = FakeStream(server.url, "cam1")
    fake.start()
    service = Service(["track", *FAST], {"EI_REDIS_URL": server.url})
    client = redis.Redis.from_url(server.url)
    try:
        wait_for(lambda: client.xlen(keys.tracks("cam1")) > 3, 60, "tracks before the restart")
        server.restart(down_for=2.0)
        wait_for(lambda: client.xlen(keys.tracks("cam1")) > 3, 30, "tracks after the restart")
        assert service.alive()
        key = ("ei_redis_reconnects_total", (("component", "track"),))
        wait_for(lambda: metrics(service).get(key, 0) >= 1, 10, "the reconnect counted")
        assert "Redis unavailable" in service.output()
    finally:
        service.stop()
        fake.stop()
        client.close()
        server.stop()
