"""``/api/streams/{id}/rules`` through the real gateway on a real Redis: a PUT is read back as
sent, a bad PUT is a 400 naming the problem and stores nothing, DELETE, sizes, media type and
roles (doc/analytics.md, "Rules")."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from elastic_inference.core import keys
from elastic_inference.core.auth import Role
from elastic_inference.core.authstore import AuthStore
from elastic_inference.core.sessions import CSRF_HEADER, SESSION_COOKIE
from elastic_inference.services.gateway.rules import MAX_RULES_BODY
from tests.credentials import bearer
from tests.gateway_app import GatewayThread
from tests.processes import http

pytestmark = pytest.mark.integration

PATH = "/api/streams/cam1/rules"
JSON = {"Content-Type": "application/json"}
RULES = [
    {"name": "entrance", "kind": "line", "points": [[0.5, 0.1], [0.5, 0.9]],
     "labels": ["person"]},
    {"name": "lobby", "kind": "zone", "points": [[0.1, 0.5], [0.4, 0.5], [0.4, 0.9], [0.1, 0.9]],
     "labels": []},
]


@pytest.fixture
def gateway(redis_url: str) -> Iterator[GatewayThread]:
    gw = GatewayThread(redis_url)
    yield gw
    gw.stop()


def put(gw: GatewayThread, body: Any, headers: dict[str, str] | None = None,
        path: str = PATH) -> tuple[int, Any]:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    code, _, answer = http(gw.url + path, "PUT", raw, {**JSON, **(headers or gw.auth)})
    return code, json.loads(answer)


def get(gw: GatewayThread, headers: dict[str, str] | None = None) -> tuple[int, Any]:
    code, _, answer = http(gw.url + PATH, "GET", None, headers or gw.auth)
    return code, json.loads(answer)


def test_put_then_get_returns_the_same_rules(gateway: GatewayThread) -> None:
    assert get(gateway) == (200, {"stream": "cam1", "version": 0, "updated_ms": 0,
                                  "rules": []})
    code, stored = put(gateway, {"rules": RULES})
    assert code == 200, stored
    assert stored["rules"] == RULES and stored["version"] == 1 and stored["updated_ms"] > 0
    assert get(gateway) == (200, stored)
    code, again = put(gateway, {"rules": RULES[:1]})
    assert (code, again["version"], again["rules"]) == (200, 2, RULES[:1])


@pytest.mark.parametrize("rule, problem", [
    ({"name": "bowtie", "kind": "zone",
      "points": [[0.1, 0.1], [0.9, 0.9], [0.9, 0.1], [0.1, 0.9]]},
     "rule 0 (bowtie): the zone is not a simple polygon"),
    ({"name": "still", "kind": "line", "points": [[0.3, 0.3], [0.3, 0.3]]},
     "rule 0 (still): the line has zero length"),
    ({"name": "pets", "kind": "line", "points": [[0, 0], [1, 1]], "labels": ["unicorn"]},
     'rule 0 (pets): unknown label(s) "unicorn"'),
    ({"name": "round", "kind": "zone",
      "points": [[0.5 + 0.01 * (k % 2), k / 40] for k in range(40)]},
     "rule 0 (round): too many points (40; at most 32)"),
])
def test_a_bad_put_is_400_with_the_message_and_stores_nothing(
        gateway: GatewayThread, redis_client: redis.Redis, rule: Any, problem: str) -> None:
    assert put(gateway, {"rules": RULES})[0] == 200
    before = redis_client.hgetall(keys.rules("cam1"))
    code, answer = put(gateway, {"rules": [RULES[0], rule]})
    assert code == 400
    assert problem.replace("rule 0", "rule 1") in answer["error"]
    assert redis_client.hgetall(keys.rules("cam1")) == before
    assert get(gateway)[1]["rules"] == RULES


def test_delete_removes_the_rules(gateway: GatewayThread, redis_client: redis.Redis) -> None:
    assert put(gateway, {"rules": RULES})[0] == 200
    for _ in range(2):  # a second DELETE finds nothing and is still a success
        code, _, body = http(gateway.url + PATH, "DELETE", None, gateway.auth)
        assert (code, body) == (204, b"")
        assert not redis_client.exists(keys.rules("cam1"))
        assert get(gateway)[1]["rules"] == []


def test_a_viewer_reads_rules_but_cannot_change_them(gateway: GatewayThread,
                                                      redis_client: redis.Redis) -> None:
    viewer, operator = bearer(redis_client, Role.VIEWER), bearer(redis_client, Role.OPERATOR)
    assert put(gateway, {"rules": RULES}, operator)[0] == 200
    assert get(gateway, viewer)[1]["rules"] == RULES
    code, answer = put(gateway, {"rules": []}, viewer)
    assert code == 403 and "operator" in answer["error"]
    code, _, _ = http(gateway.url + PATH, "DELETE", None, viewer)
    assert code == 403
    assert get(gateway, viewer)[1]["rules"] == RULES


def test_body_size_media_type_and_stream_id_are_checked(gateway: GatewayThread,
                                                         redis_client: redis.Redis) -> None:
    code, answer = put(gateway, b" " * (MAX_RULES_BODY + 1))
    assert code == 413 and str(MAX_RULES_BODY) in answer["error"]
    code, _, body = http(gateway.url + PATH, "PUT", json.dumps({"rules": RULES}).encode(),
                         {"Content-Type": "text/plain", **gateway.auth})
    assert code == 415 and b"application/json" in body
    code, answer = put(gateway, {"rules": RULES}, path="/api/streams/bad%20id/rules")
    assert code == 400 and "stream id" in answer["error"]
    assert put(gateway, b"{oops")[0] == 400
    assert not redis_client.exists(keys.rules("cam1"))


def test_a_cookie_session_changes_rules_only_with_its_csrf_token(
        gateway: GatewayThread, redis_client: redis.Redis) -> None:
    AuthStore(redis_client).add_user("op", Role.OPERATOR, "correct horse battery staple")
    sessions = gateway.ctx.gatekeeper.sessions
    assert sessions is not None
    new = sessions.create("op", Role.OPERATOR, 600)
    cookie = {"Cookie": f"{SESSION_COOKIE}={new.cookie}"}
    code, answer = put(gateway, {"rules": RULES}, cookie)
    assert code == 403 and CSRF_HEADER in answer["error"]
    code, _, _ = http(gateway.url + PATH, "DELETE", None, cookie)
    assert code == 403
    assert not redis_client.exists(keys.rules("cam1"))
    assert put(gateway, {"rules": RULES}, {**cookie, CSRF_HEADER: new.csrf})[0] == 200
