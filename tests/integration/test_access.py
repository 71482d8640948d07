"""Every route of the gateway needs its role: walked from the application's own routing table,
without credentials (401), with too low a role (403) and with the right one (2xx), on a real
Redis, with a real ``ei websocket`` process behind ``/ws`` that checks credentials itself.
Forged, expired and revoked cookies and tokens, CSRF, signed URLs and throttled logins too
(doc/security.md, "Who may do what")."""

from __future__ import annotations

import http.client
import json
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect as ws_connect

from elastic_inference.core.auth import Role
from elastic_inference.core.authstore import AuthStore
from elastic_inference.core.broker import OutputBroker
from elastic_inference.core.eventstore import EventRecord, EventStore
from elastic_inference.core.jobrequest import JobRequest
from elastic_inference.core.jobs import JobStore
from elastic_inference.core.registry import StreamRegistry
from elastic_inference.core.sessions import SESSION_COOKIE, Signer
from elastic_inference.core.sources import SourceConfig, SourceStore
from elastic_inference.services.gateway.base import implemented_methods
from tests.credentials import SECRET, SECRET_ENV, bearer
from tests.gateway_app import STREAM_INFO, GatewayThread, gray_jpeg, result
from tests.outputs import publish
from tests.processes import Service, wait_for
from tests.redis_server import free_port

pytestmark = pytest.mark.integration

V, OP, A = Role.VIEWER, Role.OPERATOR, Role.ADMIN
#: What each route and method needs, written here by hand: a route added to the application
#: without a line here fails the walk, and so does a role changed by mistake. None: public.
EXPECTED: dict[tuple[str, str], Role | None] = {
    (r"/()$", "GET"): None, (r"/()$", "HEAD"): None,
    (r"/static/(.*)$", "GET"): None, (r"/static/(.*)$", "HEAD"): None,
    (r"/healthz$", "GET"): None, (r"/readyz$", "GET"): None,
    (r"/api/login$", "POST"): None,
    (r"/api/streams$", "GET"): V, (r"/api/streams/([^/]+)$", "GET"): V,
    (r"/api/streams/([^/]+)/snapshot\.jpg$", "GET"): V,
    (r"/api/streams/([^/]+)/latest$", "GET"): V, (r"/api/streams/([^/]+)/results$", "GET"): V,
    (r"/api/streams/([^/]+)/counts$", "GET"): V, (r"/api/streams/([^/]+)/mjpeg$", "GET"): V,
    (r"/api/streams/([^/]+)/rules$", "GET"): V, (r"/api/streams/([^/]+)/rules$", "PUT"): OP,
    (r"/api/streams/([^/]+)/rules$", "DELETE"): OP,
    (r"/api/streams/([^/]+)/rules/counts$", "GET"): V,
    (r"/api/events$", "GET"): V, (r"/api/events/([^/]+)/snapshot$", "GET"): V,
    (r"/api/status$", "GET"): V, (r"/api/config$", "GET"): V, (r"/api/me$", "GET"): V,
    (r"/api/signed-url$", "GET"): V, (r"/api/logout$", "POST"): V, (r"/ws$", "GET"): V,
    (r"/api/analysis$", "GET"): OP, (r"/api/analysis$", "POST"): OP,
    (r"/api/analysis/([^/]+)$", "GET"): OP, (r"/api/analysis/([^/]+)$", "DELETE"): OP,
    (r"/api/analysis/([^/]+)/results$", "GET"): OP,
    (r"/api/analysis/([^/]+)/frames/([^/]+)\.jpg$", "GET"): OP,
    (r"/api/analysis/([^/]+)/frames/([^/]+)/results$", "GET"): OP,
    (r"/api/sources$", "GET"): V, (r"/api/sources$", "POST"): OP,
    (r"/api/sources/([^/]+)$", "GET"): V, (r"/api/sources/([^/]+)$", "PUT"): OP,
    (r"/api/sources/([^/]+)$", "DELETE"): OP,
    (r"/api/users$", "GET"): A,
}
PASSWORD = "correct horse battery staple"


@dataclass
class Answer:
    status: int
    headers: http.client.HTTPMessage
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Session:
    cookie: str
    csrf: str

    def headers(self, csrf: bool = True) -> dict[str, str]:
        found = {"Cookie": f"{SESSION_COOKIE}={self.cookie}"}
        return {**found, "X-CSRF-Token": self.csrf} if csrf else found


def call(port: int, method: str, path: str, headers: dict[str, str] | None = None,
         body: bytes | None = None) -> Answer:
    """One request; a multipart (MJPEG) answer is closed after its headers."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=15)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        multipart = resp.headers.get("Content-Type", "").startswith("multipart/")
        return Answer(resp.status, resp.headers, b"" if multipart else resp.read())
    finally:
        conn.close()


def login(port: int, name: str, password: str = PASSWORD) -> Session:
    answer = call(port, "POST", "/api/login", {"Content-Type": "application/json"},
                  json.dumps({"name": name, "password": password}).encode())
    assert answer.status == 200, answer.body
    cookie = answer.headers["Set-Cookie"]
    assert re.search(r"(?i); HttpOnly", cookie) and re.search(r"(?i); SameSite=Strict", cookie)
    assert "Secure" not in cookie  # plain HTTP here (test_tls checks HTTPS)
    value = re.match(rf"{SESSION_COOKIE}=([^;]+)", cookie)
    assert value is not None
    return Session(value.group(1).strip('"'), answer.json()["csrf"])


@dataclass
class World:
    gw: GatewayThread
    client: redis.Redis
    job: str
    ws_port: int
    event: str

    @property
    def port(self) -> int:
        return self.gw.port


@pytest.fixture
def world(redis_url: str, tmp_path: Path) -> Iterator[World]:
    client = redis.Redis.from_url(redis_url)
    store = AuthStore(client)
    for role in Role:
        store.add_user(str(role), role, PASSWORD)
    StreamRegistry(client).beat("cam1", STREAM_INFO)
    SourceStore(client).create(SourceConfig("cam1", "clip.avi", ("people",)))
    publish(OutputBroker(client), [(result("people", 1, (0.1, 0.1, 0.4, 0.9), "person"),
                                   gray_jpeg())])
    jobs = JobStore(client)
    job = jobs.create(JobRequest("clip.avi", ("people",)))
    assert jobs.store_frame(job, 0, gray_jpeg(), "m0", [])
    (tmp_path / "clip.avi").write_bytes(b"not really a video")
    ws_port = free_port()
    ws = Service(["websocket", "--redis-url", redis_url, "--host", "127.0.0.1", "--port",
                  str(ws_port)], SECRET_ENV)
    gw = GatewayThread(redis_url, websocket_upstream=f"ws://127.0.0.1:{ws_port}/ws",
                       media_dir=tmp_path)
    try:
        wait_for(lambda: call(ws_port, "GET", "/ws").status == 401 or not ws.alive(), 30,
                 "ei websocket to listen")
        assert ws.alive(), ws.output()
        event = EventStore(client).record([(EventRecord(
            "", "cam1", "people", "door", "enter", "", 1, "person", 1, time.time(),
            (0.1, 0.1, 0.4, 0.9)), gray_jpeg())])[0]
        yield World(gw, client, job, ws_port, event)
    finally:
        gw.stop()
        ws.stop()
        client.close()


def fill(pattern: str, job: str, event: str = "") -> str:
    """A path the route answers with a real resource: stream cam1, the job, its frame 0,
    the event."""
    values = iter([job, "0"] if pattern.startswith("/api/analysis/") else
                  [event] if pattern.startswith("/api/events/") else
                  ["app.js"] if pattern.startswith("/static/") else [""] if pattern == "/()$"
                  else ["cam1"])
    path = re.sub(r"\([^)]*\)", lambda _: next(values), pattern.rstrip("$"))
    query = "?path=/api/streams/cam1/mjpeg" if path == "/api/signed-url" else ""
    return path.replace("\\.", ".") + query


def request_body(pattern: str, method: str) -> tuple[dict[str, str], bytes | None]:
    if pattern == r"/api/streams/([^/]+)/rules$" and method == "PUT":
        return ({"Content-Type": "application/json"}, json.dumps({"rules": [
            {"name": "gate", "kind": "line", "points": [[0.5, 0], [0.5, 1]]}]}).encode())
    if pattern == r"/api/sources/([^/]+)$" and method == "PUT":
        return ({"Content-Type": "application/json"},
                json.dumps({"source": "clip.avi", "types": ["car"]}).encode())
    if method != "POST":
        return {}, None
    if pattern == "/api/sources$":  # a new id: cam1 exists
        return ({"Content-Type": "application/json"},
                json.dumps({"id": "cam2", "source": "0", "types": ["people"]}).encode())
    if pattern == "/api/analysis$":
        return ({"Content-Type": "application/json"},
                json.dumps({"source": "clip.avi", "types": ["people"]}).encode())
    return {"Content-Type": "application/json"}, b"{}"


def test_every_route_needs_its_role(world: World) -> None:
    rules = {(rule.matcher.regex.pattern, method)  # type: ignore[attr-defined]
             for rule in world.gw.app.wildcard_router.rules
             for method in implemented_methods(rule.target)}
    assert rules == set(EXPECTED), "classify every route and method in EXPECTED"
    sessions = {role: login(world.port, str(role)) for role in Role}
    checked = 0
    last_delete = sorted(EXPECTED.items(), key=lambda kv: kv[0][1] == "DELETE")
    for (pattern, method), required in last_delete:
        path = fill(pattern, world.job, world.event)
        extra, body = request_body(pattern, method)
        if required is None:
            if pattern != "/api/login$":  # its 2xx needs a password: login() above
                answer = call(world.port, method, path, extra, body)
                assert 200 <= answer.status < 300, (method, path, answer.status)
            continue
        answer = call(world.port, method, path, extra, body)
        assert answer.status == 401, (method, path, answer.status, answer.body)
        assert answer.headers["WWW-Authenticate"].startswith("Bearer")
        assert "error" in answer.json()
        for lower in (r for r in Role if r < required):
            headers = {**extra, **sessions[lower].headers()}
            answer = call(world.port, method, path, headers, body)
            assert answer.status == 403, (method, path, lower, answer.status)
            assert str(required) in answer.json()["error"]
        own = sessions[required] if path != "/api/logout" else login(world.port, str(required))
        answer = call(world.port, method, path, {**extra, **own.headers()}, body)
        if path == "/ws":  # the right role and no upgrade: told to upgrade, not refused
            assert answer.status == 400 and "websocket" in answer.json()["error"]
        else:
            assert 200 <= answer.status < 300, (method, path, required, answer.status,
                                                answer.body[:200])
        checked += 1
    assert checked == sum(1 for r in EXPECTED.values() if r is not None)


def test_websocket_needs_credentials_on_the_gateway_and_on_the_service(world: World) -> None:
    viewer = login(world.port, "viewer")
    store = AuthStore(world.client)
    for port in (world.port, world.ws_port):  # the relay, and the service the Ingress reaches
        url = f"ws://127.0.0.1:{port}/ws"
        token = store.create_token(Role.VIEWER)
        bearer_header = {"Authorization": f"Bearer {token.token}"}
        with pytest.raises(InvalidStatus) as refused, ws_connect(url, open_timeout=10):
            pass
        assert refused.value.response.status_code == 401, port
        for headers in (viewer.headers(csrf=False), bearer_header):
            with ws_connect(url, additional_headers=headers, open_timeout=10) as ws:
                assert ws.protocol.state.name == "OPEN"
        store.revoke_token(token.info.name)
        with (pytest.raises(InvalidStatus) as revoked,
              ws_connect(url, additional_headers=bearer_header, open_timeout=10)):
            pass
        assert revoked.value.response.status_code == 401, port


def other_first(text: str) -> str:
    """``text`` with another first character: always a change (overwriting the last two with
    "AA" left a value that already ended so unchanged, one run in 4,096), and in full bits
    (a base64 value's last character also carries padding bits a decoder may ignore)."""
    return ("B" if text[0] == "A" else "A") + text[1:]


def test_forged_expired_and_revoked_credentials_get_401(world: World) -> None:
    port, client = world.port, world.client
    viewer = login(port, "viewer")
    assert call(port, "GET", "/api/me", viewer.headers()).json()["name"] == "viewer"
    user, sid, expires, mac = viewer.cookie.rsplit(".", 3)
    forged = [f"admin.{sid}.{expires}.{mac}",  # another user under the viewer's MAC
              f"{user}.{sid}.{int(expires) + 3600}.{mac}",  # a longer life
              f"{user}.{sid}.{expires}.{other_first(mac)}",  # a damaged MAC
              f"{user}.{other_first(sid)}.{expires}.{mac}"]  # another id
    # Correctly signed, but expired (and the session it names is ended by then anyway).
    past = str(int(time.time()) - 10)
    forged.append(f"{user}.{sid}.{past}.{Signer(SECRET).mac('session', user, sid, past)}")
    for cookie in forged:
        answer = call(port, "GET", "/api/me", {"Cookie": f"{SESSION_COOKIE}={cookie}"})
        assert answer.status == 401, cookie
    assert call(port, "POST", "/api/logout", viewer.headers()).status == 204
    assert call(port, "GET", "/api/me", viewer.headers()).status == 401  # ended
    operator = login(port, "operator")
    AuthStore(client).remove_user("operator")
    assert call(port, "GET", "/api/me", operator.headers()).status == 401  # user removed
    AuthStore(client).add_user("operator", Role.OPERATOR, PASSWORD)
    assert call(port, "GET", "/api/me", operator.headers()).status == 401  # still ended
    made = AuthStore(client).create_token(Role.ADMIN)
    token = {"Authorization": f"Bearer {made.token}"}
    assert call(port, "GET", "/api/users", token).status == 200
    AuthStore(client).revoke_token(made.info.name)
    for headers in (token, {"Authorization": "Bearer ei_" + "A" * 43},
                    {"Authorization": "Basic YWRtaW46YWRtaW4="}, {"Authorization": "Bearer"}):
        answer = call(port, "GET", "/api/streams", headers)
        assert answer.status == 401, headers
    # A bad token is refused even beside a good cookie: the client sent it, it is checked.
    admin = login(port, "admin")
    assert call(port, "GET", "/api/me", {**admin.headers(), **token}).status == 401


def test_a_cookie_session_changes_nothing_without_its_csrf_token(world: World) -> None:
    operator = login(world.port, "operator")
    job = {"Content-Type": "application/json"}
    body = json.dumps({"source": "clip.avi", "types": ["people"]}).encode()
    path = f"/api/analysis/{world.job}"
    for headers in (operator.headers(csrf=False),
                    {**operator.headers(), "X-CSRF-Token": "x" * 43},
                    {**operator.headers(), "X-CSRF-Token": login(world.port, "admin").csrf}):
        assert call(world.port, "POST", "/api/analysis", {**job, **headers}, body).status == 403
        answer = call(world.port, "DELETE", path, headers)
        assert answer.status == 403 and "X-CSRF-Token" in answer.json()["error"]
    assert JobStore(world.client).get(world.job) is not None  # nothing was deleted
    answer = call(world.port, "POST", "/api/analysis", {**job, **operator.headers()}, body)
    assert answer.status == 201
    # A token needs none: no browser sends it by itself.
    token = bearer(world.client, Role.OPERATOR)
    assert call(world.port, "DELETE", path, token).status == 204
    # Host is checked before anything else.
    assert call(world.port, "GET", "/api/me", {**operator.headers(),
                                               "Host": "evil.example"}).status == 400


def test_signed_urls_open_one_image_for_a_while(world: World) -> None:
    viewer = login(world.port, "viewer")
    answer = call(world.port, "GET", "/api/signed-url?path=/api/streams/cam1/snapshot.jpg",
                  viewer.headers())
    assert answer.status == 200
    url = answer.json()["url"]
    shot = call(world.port, "GET", url)  # no credentials at all
    assert shot.status == 200 and shot.body[:2] == b"\xff\xd8"
    query = url.split("?", 1)[1]
    assert call(world.port, "GET", f"/api/streams/cam1/mjpeg?{query}").status == 401
    assert call(world.port, "GET", f"/api/streams?{query}").status == 401
    assert call(world.port, "POST", f"/api/logout?{query}").status == 401
    for bad in ("/api/streams", "/api/analysis", "https://evil.example/x"):
        answer = call(world.port, "GET", f"/api/signed-url?path={bad}", viewer.headers())
        assert answer.status == 400
    short = call(world.port, "GET", "/api/signed-url?path=/api/streams/cam1/mjpeg&ttl=1",
                 viewer.headers()).json()["url"]
    assert call(world.port, "GET", short).status == 200
    time.sleep(2.1)
    assert call(world.port, "GET", short).status == 401


def test_failed_logins_are_throttled_and_logged_without_the_password(
        world: World, caplog: pytest.LogCaptureFixture) -> None:
    port = world.port
    wrong = json.dumps({"name": "admin", "password": "not the password 123"}).encode()
    json_type = {"Content-Type": "application/json"}
    answers = [call(port, "POST", "/api/login", json_type, wrong) for _ in range(10)]
    assert [a.status for a in answers] == [401] * 10
    assert answers[0].headers["WWW-Authenticate"].startswith("Bearer")
    answer = call(port, "POST", "/api/login", json_type, wrong)
    assert answer.status == 429 and int(answer.headers["Retry-After"]) >= 1
    right = json.dumps({"name": "admin", "password": PASSWORD}).encode()
    assert call(port, "POST", "/api/login", json_type, right).status == 429  # not even tried
    assert "not the password" not in caplog.text and PASSWORD not in caplog.text
    assert "login failed for user 'admin'" in caplog.text
    for bad in (b"name=admin", b"[]", b'{"name": "admin"}', b'{"name": 1, "password": "x"}',
                b'{"name": "admin", "password": "\\ud800"}'):
        assert call(port, "POST", "/api/login", json_type, bad).status == 400, bad
    assert call(port, "POST", "/api/login", {"Content-Type": "text/plain"}, right).status == 415
