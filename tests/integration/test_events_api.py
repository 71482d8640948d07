"""``/api/events``, ``/api/events/{id}/snapshot`` and ``/api/streams/{id}/rules/counts``
through the real gateway on a real Redis: filters, pagination, 400s naming the parameter, 404
for an unknown event, the viewer role; webhook sinks of PUT rules pass the allow-list
(doc/analytics.md, "Wire"; doc/api.md)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

import pytest
import redis

from elastic_inference.core import keys
from elastic_inference.core.auth import Role
from elastic_inference.core.eventstore import EventRecord, EventStore
from elastic_inference.core.netguard import SourcePolicy
from tests.credentials import bearer
from tests.gateway_app import GatewayThread
from tests.processes import http

pytestmark = pytest.mark.integration


@pytest.fixture
def gateway(redis_url: str) -> Iterator[GatewayThread]:
    gw = GatewayThread(redis_url)
    yield gw
    gw.stop()


def record(client: redis.Redis, n: int) -> list[str]:
    """``n`` events alternating over streams cam0/cam1, rules door/gate."""
    store = EventStore(client)
    return [store.record([(EventRecord(
        "", f"cam{i % 2}", "people", ("door", "gate")[i % 2], ("enter", "cross")[i % 2],
        ("", "a->b")[i % 2], i, "person", 100 + i, time.time(), (0.1, 0.2, 0.3, 0.4)),
        b"\xff\xd8jpeg-%d" % i)])[0] for i in range(n)]


def events(gw: GatewayThread, headers: dict[str, str] | None = None,
           **params: Any) -> tuple[int, Any]:
    """One GET /api/events with these parameters (the admin token unless ``headers``)."""
    code, _, body = http(f"{gw.url}/api/events?{urlencode(params)}", "GET", None,
                         gw.auth if headers is None else headers)
    return code, json.loads(body)


def test_events_newest_first_filtered_and_paged(gateway: GatewayThread,
                                                 redis_client: redis.Redis) -> None:
    ids = record(redis_client, 11)
    code, page = events(gateway)
    assert code == 200 and [e["id"] for e in page["events"]] == ids[::-1]
    assert page["next"] is None
    first = page["events"][0]
    assert first == {"id": ids[-1], "stream": "cam0", "type": "people", "rule": "door",
                     "kind": "enter", "direction": "", "track_id": 10, "label": "person",
                     "seq": 110, "ts": first["ts"], "box": [0.1, 0.2, 0.3, 0.4]}
    code, gate = events(gateway, stream="cam1", rule="gate", kind="cross")
    assert code == 200 and [e["id"] for e in gate["events"]] == ids[1::2][::-1]
    assert events(gateway, stream="cam1", kind="enter")[1]["events"] == []
    seen, cursor = [], ""
    while True:
        code, page = events(gateway, limit=4, cursor=cursor)
        assert code == 200 and len(page["events"]) <= 4
        seen += [e["id"] for e in page["events"]]
        if page["next"] is None:
            break
        cursor = page["next"]
    assert seen == ids[::-1]
    ms = int(ids[5].split("-")[0])
    code, ranged = events(gateway, since=ms / 1000, until=ms / 1000)
    assert code == 200 and ids[5] in [e["id"] for e in ranged["events"]]
    assert events(gateway, until=1.0)[1]["events"] == []
    for nothing_older in ("0-0", "0000000-0", "0-00"):
        assert events(gateway, cursor=nothing_older) == (200, {"events": [], "next": None})
    biggest = f"{2**64 - 1}-{2**64 - 1}"  # the largest id Redis takes: everything is older
    assert len(events(gateway, cursor=biggest, limit=200)[1]["events"]) == 11


@pytest.mark.parametrize("params, problem", [
    ({"limit": "0"}, "invalid limit"),
    ({"limit": "201"}, "invalid limit"),
    ({"limit": "ten"}, "invalid limit"),
    ({"since": "yesterday"}, "invalid since"),
    ({"since": "20", "until": "10"}, "invalid since"),
    ({"until": "-1"}, "invalid until"),
    ({"stream": "bad id"}, "invalid stream"),
    ({"rule": "a/b"}, "invalid rule"),
    ({"kind": "jump"}, "invalid kind"),
    ({"cursor": "12"}, "invalid cursor"),
    ({"cursor": "x-1"}, "invalid cursor"),
    ({"cursor": "18446744073709551616-0"}, "invalid cursor"),
])
def test_bad_parameters_are_400_naming_them(gateway: GatewayThread, params: dict[str, str],
                                            problem: str) -> None:
    code, answer = events(gateway, None, **params)
    assert code == 400 and problem in answer["error"], answer


def test_a_snapshot_by_event_id_and_404_when_unknown_or_expired(
        gateway: GatewayThread, redis_client: redis.Redis) -> None:
    ids = record(redis_client, 2)
    code, headers, body = http(f"{gateway.url}/api/events/{ids[1]}/snapshot", "GET", None,
                               gateway.auth)
    assert (code, headers["Content-Type"], body) == (200, "image/jpeg", b"\xff\xd8jpeg-1")
    redis_client.delete(keys.event_snapshot(ids[0]))  # as its expiry would
    for unknown in (ids[0], "1-0"):
        code, _, body = http(f"{gateway.url}/api/events/{unknown}/snapshot", "GET", None,
                             gateway.auth)
        assert code == 404 and unknown in json.loads(body)["error"]
    for bad in ("nope", f"{2**64}-0"):
        code, _, body = http(f"{gateway.url}/api/events/{bad}/snapshot", "GET", None,
                             gateway.auth)
        assert code == 400 and "event id" in json.loads(body)["error"]


def test_a_snapshot_deleted_for_the_cap_is_404_and_its_event_stays(
        gateway: GatewayThread, redis_client: redis.Redis) -> None:
    store = EventStore(redis_client, snapshots=2)
    ids = [store.record([(EventRecord("", "cam0", "people", "door", "enter", "", i, "person",
                                      i, time.time(), (0.1, 0.2, 0.3, 0.4)),
                          b"\xff\xd8jpeg-%d" % i)])[0] for i in range(3)]
    codes = [http(f"{gateway.url}/api/events/{i}/snapshot", "GET", None, gateway.auth)[0]
             for i in ids]
    assert codes == [404, 200, 200]
    code, body = events(gateway)
    assert code == 200 and [e["id"] for e in body["events"]] == ids[::-1]


def test_a_viewer_reads_events_and_anonymous_callers_do_not(
        gateway: GatewayThread, redis_client: redis.Redis) -> None:
    ids = record(redis_client, 1)
    viewer = bearer(redis_client, Role.VIEWER)
    assert events(gateway, viewer)[0] == 200
    assert http(f"{gateway.url}/api/events/{ids[0]}/snapshot", "GET", None, viewer)[0] == 200
    assert events(gateway, {})[0] == 401
    assert http(f"{gateway.url}/api/events/{ids[0]}/snapshot", "GET", None, {})[0] == 401
    assert http(f"{gateway.url}/api/streams/cam1/rules/counts", "GET", None, {})[0] == 401


def test_rule_counts_give_samples_in_the_range_and_the_totals(
        gateway: GatewayThread, redis_client: redis.Redis) -> None:
    path = "/api/streams/cam1/rules/counts"
    code, empty = gateway.get_json(path)
    assert code == 200 and (empty["samples"], empty["totals"]) == ([], {})
    now = time.time()
    for n in range(3):
        redis_client.xadd(keys.counts_history("cam1"), {"counts": json.dumps(
            {"ts": now + n, "rules": {"gate": {"a->b": n, "b->a": 0}}})})
    redis_client.xadd(keys.counts_history("cam1"), {"counts": b"{damaged"})
    redis_client.hset(keys.counts("cam1"), mapping={
        "gate|a->b|person": 2, "gate|a->b|car": 1, "door|enter|person": 5, "odd": 1})
    code, counts = gateway.get_json(f"{path}?since={now - 60:.3f}&until={now + 60:.3f}")
    assert code == 200 and not counts["truncated"]
    assert [s["rules"]["gate"]["a->b"] for s in counts["samples"]] == [0, 1, 2]
    assert counts["totals"] == {"gate": {"a->b": {"person": 2, "car": 1}},
                                "door": {"enter": {"person": 5}}}
    code, before = gateway.get_json(f"{path}?since=1&until=2")
    assert code == 200 and before["samples"] == [] and before["totals"]
    code, bad = gateway.get_json(f"{path}?since=10&until=5")
    assert code == 400 and "invalid since" in bad["error"]
    code, bad = gateway.get_json(f"{path}?until=nope")
    assert code == 400 and "invalid until" in bad["error"]


def test_webhook_sinks_of_rules_pass_the_allow_list(redis_url: str,
                                                     redis_client: redis.Redis) -> None:
    rules = {"rules": [{"name": "door", "kind": "zone", "dwell_s": 30,
                        "points": [[0.1, 0.1], [0.9, 0.1], [0.9, 0.9]],
                        "sinks": [{"kind": "webhook", "url": "http://127.0.0.1:9/hook"},
                                  {"kind": "mqtt", "topic": "site/door"}]}]}
    body = json.dumps(rules).encode()
    headers = {"Content-Type": "application/json"}
    closed = GatewayThread(redis_url)  # EI_SOURCE_ALLOW empty: no outbound URL at all
    try:
        code, _, answer = http(f"{closed.url}/api/streams/cam1/rules", "PUT", body,
                               {**headers, **closed.auth})
        assert code == 400 and b"rule 0 (door): sink 0: URL webhooks are off" in answer
        assert not redis_client.exists(keys.rules("cam1"))
    finally:
        closed.stop()
    public = GatewayThread(redis_url, source_policy=SourcePolicy.parse(["0.0.0.0/0"]))
    try:  # a wide network never unlocks loopback
        code, _, answer = http(f"{public.url}/api/streams/cam1/rules", "PUT", body,
                               {**headers, **public.auth})
        assert code == 400 and b"a loopback address" in answer, answer
        assert not redis_client.exists(keys.rules("cam1"))
    finally:
        public.stop()
    loopback = GatewayThread(redis_url, source_policy=SourcePolicy.parse(["127.0.0.1"]))
    try:
        code, _, answer = http(f"{loopback.url}/api/streams/cam1/rules", "PUT", body,
                               {**headers, **loopback.auth})
        assert code == 200, answer
        assert json.loads(answer)["rules"][0]["sinks"] == rules["rules"][0]["sinks"]
    finally:
        loopback.stop()
