"""doc/openapi.yaml against a running gateway: every operation served, credentials and roles
answered as documented, then schemathesis. The routing table against the spec, both ways, is
in test_openapi_routes.py.

Both run against a real ``ei up`` with authentication on (the test's redis-server, free
loopback ports, the sample streams, a face worker, an admin token and user made with the
project's AuthStore) with one finished analysis job, so that stream and job routes answer from
real data as well as 400 and 404.
"""

from __future__ import annotations

import itertools
import json
import re
import secrets
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import redis
import requests
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis import Case, GenerationMode, checks

from elastic_inference.core.access import Gatekeeper
from elastic_inference.core.auth import Role
from elastic_inference.core.authstore import AuthStore
from elastic_inference.core.eventstore import EventRecord, EventStore
from elastic_inference.core.sessions import CSRF_HEADER, SESSION_COOKIE
from tests.conftest import REPO
from tests.credentials import SECRET_ENV, bearer, gatekeeper
from tests.openapi_doc import SPEC_PATH, spec
from tests.processes import Service, http, wait_for
from tests.redis_server import RedisServer, free_port

pytestmark = pytest.mark.integration

#: The stream the spec's example names and the face worker analyses.
STREAM = "megamind-face"
#: A managed source the fixture adds (disabled: nothing reads it); its file is a sample.
SOURCE = "openapi-source"
SOURCE_BODY: dict[str, Any] = {"source": "Megamind.avi", "types": ["face"], "enabled": False}
MAX_EXAMPLES = 50
CHECKS = [checks.not_a_server_error, checks.status_code_conformance,
          checks.content_type_conformance, checks.response_schema_conformance,
          checks.negative_data_rejection, checks.unsupported_method, checks.ignored_auth]
#: The test's own admin user: schemathesis' logins sometimes use its name and password, and
#: its sessions are what ``POST /api/logout`` ends. A fresh password per run, never printed.
USER = "openapi"
PASSWORD = secrets.token_urlsafe(18)
#: The one client address every request here comes from (login throttling counts by it).
CLIENT = "127.0.0.1"
#: Where a job's URL source is pointed before it is sent: loopback, nothing listens on port 9,
#: so a generated URL never makes the analysis runner reach off the machine.
LOCAL_URL = "http://127.0.0.1:9/generated.mp4"

schema = schemathesis.openapi.from_path(SPEC_PATH)
# The credentials are the test's own (a real token, real sessions): generated ones (random
# Authorization, cookie, X-CSRF-Token, exp/sig) could only be refused, and would ride along
# beside the real token, which the gateway checks first. `ignored_auth` still sends each
# successful request again without credentials and with invalid ones, expecting 401/403.
schema.config.generation.update(max_examples=MAX_EXAMPLES, with_security_parameters=False)
# A job body over 16 KiB is refused with 413 before it is read: a rejection like 400.
_rejection = schema.config.checks.negative_data_rejection
_rejection.expected_statuses = [*_rejection.expected_statuses, "413"]


# ----- against a running `ei up`


@dataclass(frozen=True)
class System:
    url: str
    job: str
    #: An event recorded with its snapshot (no ``ei track`` runs here).
    event: str
    #: ``Authorization`` of an admin token: sent with every request but the 401 checks.
    auth: dict[str, str]
    #: The gateway's own kind of gatekeeper on the same Redis and secret: it makes sessions
    #: of USER and clears login throttling, as the gateway would see them.
    gate: Gatekeeper

    def session(self) -> dict[str, str]:
        """The cookie and CSRF header of a fresh login session of USER (made in Redis, not
        through ``POST /api/login``, whose throttling a test of it must not spend)."""
        assert self.gate.sessions is not None
        new = self.gate.sessions.create(USER, Role.ADMIN, 600)
        return {"Cookie": f"{SESSION_COOKIE}={new.cookie}", CSRF_HEADER: new.csrf}


def api(url: str, method: str = "GET", body: Any = None,
        headers: dict[str, str] | None = None) -> tuple[int, Any]:
    """One API request with a JSON body (if any); the status and the decoded JSON answer."""
    extra = {"Content-Type": "application/json"} if body is not None else {}
    status, _, raw = http(url, method, None if body is None else json.dumps(body).encode(),
                          {**extra, **(headers or {})})
    return status, json.loads(raw) if raw else None


@pytest.fixture(scope="module")
def system(redis_server: RedisServer) -> Iterator[System]:
    """``ei up`` on the test's Redis with authentication on, one face worker, a live
    ``megamind-face`` stream with results, and one finished analysis job. Its user and token
    exist before it starts, so it creates no first admin of its own."""
    client = redis.Redis.from_url(redis_server.url)
    client.flushall()
    AuthStore(client).add_user(USER, Role.ADMIN, PASSWORD)
    auth = bearer(client, Role.ADMIN)
    port, ws_port = free_port(), free_port()
    up = Service(["up", "--port", str(port), "--ws-port", str(ws_port), "--model-dir",
                  str(REPO / "models"), "--sample-dir", str(REPO / "samples"), "--fps", "4",
                  "--workers", "face", "--spa-dir", str(REPO / "spa" / "dist"),
                  # Schemathesis sends hundreds of requests per operation with one token.
                  "--job-rate", "100000/min", "--list-rate", "100000/min"],
                 env={"EI_REDIS_URL": redis_server.url, **SECRET_ENV}, own_group=True)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: api(f"{url}/api/streams/{STREAM}/latest", headers=auth)[0] == 200,
                 120, f"results of {STREAM}")
        status, job = api(f"{url}/api/analysis", "POST",
                          {"source": "Megamind.avi", "types": ["face"], "frame_step": 10000,
                           "name": "openapi"}, auth)
        assert status == 201, job
        wait_for(lambda: api(f"{url}/api/analysis/{job['id']}", headers=auth)[1]["status"]
                 == "done", 120, "the analysis job to finish")
        status, source = api(f"{url}/api/sources", "POST", {"id": SOURCE, **SOURCE_BODY}, auth)
        assert status == 201, source
        event = EventStore(client).record([(EventRecord(
            "", STREAM, "face", "door", "enter", "", 1, "face", 0, time.time(),
            (0.1, 0.1, 0.2, 0.2)), b"\xff\xd8 snapshot")])[0]
        yield System(url, job["id"], event, auth, gatekeeper(client))
        output = up.output()
        assert up.alive(), output[-3000:]
        assert PASSWORD not in output and auth["Authorization"].split()[1] not in output
    finally:
        up.stop(timeout=30)
        client.close()


def filled(path: str, system: System) -> str:
    """A spec path with real ids: the live stream, the finished job, its frame 0, the event,
    the source; the signed URL route with the one query parameter it needs."""
    query = f"?path=/api/streams/{STREAM}/snapshot.jpg" if path == "/api/signed-url" else ""
    found = real_id(path, system)
    return path.replace("{id}", found).replace("{n}", "0") + query


def real_id(path: str, system: System) -> str:
    """The id of the fixture's resource of ``path``'s kind."""
    return (system.job if "/api/analysis/" in path else system.event if "/api/events/" in path
            else SOURCE if path.startswith("/api/sources/") else STREAM)


def test_every_described_operation_is_served(system: System) -> None:
    """No operation of the spec falls through to the gateway's catch-all 404 or answers 405
    (with an admin token: a POST of ``{}`` is a 400, a logout with a token too; a PUT of
    rules clears them, a DELETE of them is a 204; a PUT of the source replaces it as it
    was)."""
    for path, ops in spec()["paths"].items():
        for method in ops:
            unknown = {"/api/analysis/": "j000000000000", "/api/sources/": "no-such-source"}
            kind = next((k for k in unknown if path.startswith(k)), None)
            job_delete = method == "delete" and kind is not None
            if job_delete:
                # An unknown id: the route answers, the fixture's job and source stay.
                target = f"{system.url}{kind}{unknown[kind or '']}"
            else:
                target = system.url + filled(path, system)
            body_json: dict[str, Any] | None = {
                "post": {}, "put": SOURCE_BODY if kind == "/api/sources/" else {"rules": []},
            }.get(method)
            with requests.request(method.upper(), target, json=body_json,
                                  headers=system.auth, stream=True, timeout=30) as resp:
                body = b"" if "mixed-replace" in resp.headers.get("Content-Type", "") \
                    else resp.content
            assert resp.status_code != 405, (method, path, body)
            assert b"no such resource" not in body, (method, path, body)
            expected = {"post": 400, "delete": 404 if job_delete else 204}.get(method, 200)
            assert resp.status_code == expected, (method, path, resp.status_code, body)


def test_without_credentials_operations_answer_401_as_documented(system: System) -> None:
    """A few operations of each kind (a viewer's GET, an image, an operator's GET and write,
    the admin's listing, logout), without credentials and with an unknown token: 401 with
    the documented ``WWW-Authenticate`` and error body, and nothing done. Every route is
    walked by tests/integration/test_access.py; this checks what the spec says of them."""
    data = spec()
    unauthorized = data["components"]["responses"]["Unauthorized"]
    realm = unauthorized["headers"]["WWW-Authenticate"]["schema"]["const"]
    job = json.dumps({"source": "Megamind.avi", "types": ["face"]}).encode()
    operations = [("get", "/api/streams"), ("get", "/api/streams/{id}/snapshot.jpg"),
                  ("get", "/api/analysis"), ("post", "/api/analysis"),
                  ("delete", "/api/analysis/{id}"), ("get", "/api/users"),
                  ("post", "/api/logout")]
    for method, path in operations:
        assert "401" in data["paths"][path][method]["responses"], (method, path)
        body = job if path == "/api/analysis" and method == "post" else None
        for headers in ({}, {"Authorization": "Bearer ei_" + "A" * 43}):
            status, answer, raw = http(system.url + filled(path, system), method.upper(), body,
                                       {"Content-Type": "application/json", **headers})
            assert status == 401, (method, path, headers, status, raw)
            assert answer["WWW-Authenticate"] == realm, (method, path)
            assert set(json.loads(raw)) == {"error"}, (method, path, raw)
    status, jobs = api(f"{system.url}/api/analysis", headers=system.auth)
    # None added, and the finished one not deleted.
    assert status == 200 and [j["id"] for j in jobs["jobs"]] == [system.job]


def test_roles_csrf_signed_urls_and_logins_answer_as_documented(system: System) -> None:
    """403 for too low a role and for a cookie's write without its CSRF token, each listed
    for its operation; a signed URL opens its image and nothing else; the public operations
    answer without credentials, and a login's cookie works until logout."""
    data = spec()
    paths = data["paths"]
    for role, path in ((Role.VIEWER, "/api/analysis"), (Role.OPERATOR, "/api/users")):
        token = {"Authorization": f"Bearer {system.gate.store.create_token(role).token}"}
        status, answer = api(system.url + path, headers=token)
        assert status == 403 and "403" in paths[path]["get"]["responses"], (role, path, answer)
        assert paths[path]["get"]["x-required-role"] in answer["error"]
    cookie_only = {k: v for k, v in system.session().items() if k != CSRF_HEADER}
    status, answer = api(f"{system.url}/api/analysis/{system.job}", "DELETE",
                         headers=cookie_only)
    assert status == 403 and CSRF_HEADER in answer["error"]
    assert "403" in paths["/api/analysis/{id}"]["delete"]["responses"]
    assert api(f"{system.url}/api/analysis/{system.job}", headers=system.auth)[0] == 200

    status, signed = api(system.url + filled("/api/signed-url", system), headers=system.auth)
    assert status == 200 and signed["expires"] > 0, signed
    status, answer, raw = http(system.url + signed["url"])  # no credentials at all
    assert status == 200 and answer["Content-Type"] == "image/jpeg" and raw[:2] == b"\xff\xd8"
    query = signed["url"].split("?", 1)[1]
    assert api(f"{system.url}/api/streams?{query}")[0] == 401

    for path in ("/healthz", "/readyz"):
        assert api(system.url + path)[0] == 200, path
    system.gate.client_logins.reset(CLIENT)  # schemathesis' logins may have spent the rate
    status, answer, raw = http(f"{system.url}/api/login", "POST",
                               json.dumps({"name": USER, "password": PASSWORD}).encode(),
                               {"Content-Type": "application/json"})
    assert status == 200, raw
    me = json.loads(raw)
    assert me == {"name": USER, "role": "admin", "kind": "user", "auth": True,
                  "csrf": me["csrf"]} and me["csrf"]
    cookie = answer["Set-Cookie"]
    assert cookie.startswith(f"{SESSION_COOKIE}=")
    assert re.search(r"(?i); HttpOnly", cookie) and re.search(r"(?i); SameSite=Strict", cookie)
    session = {"Cookie": cookie.split(";", 1)[0], CSRF_HEADER: me["csrf"]}
    assert api(f"{system.url}/api/me", headers=session) == (200, me)
    assert api(f"{system.url}/api/logout", "POST", headers=session)[0] == 204
    assert api(f"{system.url}/api/me", headers=session)[0] == 401


_picks = itertools.count()
_logins = itertools.count()
_sources = itertools.count()
#: Requests schemathesis sent per operation, and those answered 2xx, checked by the test
#: after it.
sent: Counter[str] = Counter()
succeeded: Counter[str] = Counter()


def prepare(case: Case, system: System) -> dict[str, str]:
    """Every other positive GET names the live stream, the finished job, the recorded event
    or the source (a random id is almost always unknown), and half of those for a frame its
    stored frame 0; a job's or source's URL points at loopback, and every other positive
    source body names a sample file and a known type (and its path's id). Returns the
    credentials to send: the admin token, but a fresh login session for a logout, each its own
    to end (with a token, a logout answers the documented 400:
    test_every_described_operation_is_served sees it).

    Every third positive login names USER with its password, its client's and USER's
    throttling cleared first: the other, random logins (401) spend the client's 10/min at
    once, and the 429 that follows would hide the 200 (throttling itself is
    test_access.py's)."""
    positive = case.meta is None or case.meta.generation.mode == GenerationMode.POSITIVE
    if case.path == "/api/login" and positive and isinstance(case.body, dict) \
            and set(case.body) == {"name", "password"} and next(_logins) % 3 == 0:
        case.body.update(name=USER, password=PASSWORD)
        system.gate.client_logins.reset(CLIENT)
        system.gate.user_logins.reset(USER)
    params = case.path_parameters or {}
    if positive and case.method == "GET" and "id" in params:
        pick = next(_picks)  # counted over these cases only, so no other rhythm aligns with it
        if pick % 2:
            params["id"] = real_id(case.path, system)
            if "n" in params and pick % 4 == 1:
                params["n"] = 0  # the job's one stored frame
    if case.method in ("POST", "PUT") and isinstance(case.body, dict) \
            and "://" in str(case.body.get("source", "")):
        case.body["source"] = LOCAL_URL
    if positive and case.path.startswith("/api/sources") and isinstance(case.body, dict) \
            and next(_sources) % 2:
        # A random file name is never in the media directory, a random type rarely known.
        case.body.update(SOURCE_BODY, enabled=case.body.get("enabled", False))
        if case.method == "PUT":
            case.body["id"] = params["id"]
    if case.path == "/api/logout":
        return system.session()
    return system.auth


def check_mjpeg(case: Case, system: System, headers: dict[str, str]) -> int:
    """The MJPEG response never ends, so it is read by hand: its status, its type, and an
    error's JSON body."""
    kwargs = case.as_transport_kwargs(base_url=system.url, headers=headers)
    with requests.request(**kwargs, stream=True, timeout=30) as resp:
        documented = case.operation.definition.raw["responses"]
        if case.method.upper() != case.operation.method.upper():  # the coverage phase's
            documented = {"405": {}}  # methods the route lacks (TRACE, ...)
        assert str(resp.status_code) in documented, (kwargs, resp.status_code)
        assert resp.status_code < 500, (kwargs, resp.status_code, resp.content)
        kind = resp.headers["Content-Type"]
        if resp.status_code == 200:
            assert kind == "multipart/x-mixed-replace; boundary=eiframe"
        else:
            assert kind.startswith("application/json")
            assert set(resp.json()) == {"error"}
        return resp.status_code


@schema.parametrize()
@settings(max_examples=MAX_EXAMPLES, deadline=None,
          suppress_health_check=list(HealthCheck))
def test_schemathesis_against_ei_up(case: Case, system: System) -> None:
    name = f"{case.operation.method.upper()} {case.operation.path}"
    sent[name] += 1
    headers = prepare(case, system)
    if case.path.endswith("/mjpeg"):
        status = check_mjpeg(case, system, headers)
    else:
        response = case.call_and_validate(base_url=system.url, headers=headers, checks=CHECKS,
                                          timeout=30)
        status = response.status_code
        made = response.json()["id"] if status == 201 else None
        if made is not None:  # a job or a source was made: gone at once, nothing piles up
            kind = "sources" if case.path.startswith("/api/sources") else "analysis"
            assert http(f"{system.url}/api/{kind}/{made}", "DELETE",
                        headers=system.auth)[0] == 204
    if 200 <= status < 300:
        succeeded[name] += 1


def test_schemathesis_sent_enough_examples() -> None:
    """At least MAX_EXAMPLES requests for every operation with inputs (one without any has
    only the few cases the coverage phase makes of it), and real answers, not only errors:
    a 2xx for every operation but DELETE (whose ids are never a real job's)."""
    assert sent, "run the whole module: test_schemathesis_against_ei_up did not run"
    for path, ops in spec()["paths"].items():
        for method, operation in ops.items():
            name = f"{method.upper()} {path}"
            has_inputs = bool(operation.get("parameters") or operation.get("requestBody"))
            assert sent[name] >= (MAX_EXAMPLES if has_inputs else 1), (name, dict(sent))
            assert method == "delete" or succeeded[name], (name, dict(succeeded))
