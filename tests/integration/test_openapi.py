"""doc/openapi.yaml against the gateway: the routes both ways, then schemathesis on ``ei up``.

The routing check reads the gateway's own routing table, so a route added without its path in
the spec fails here; the served check and schemathesis run against a real ``ei up`` (the test's
redis-server, free loopback ports, the sample streams, a face worker) with one finished
analysis job, so that stream and job routes answer from real data as well as 400 and 404.
"""

from __future__ import annotations

import itertools
import json
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import redis
import requests
import schemathesis
import tornado.web
import yaml
from hypothesis import HealthCheck, settings
from openapi_spec_validator import validate
from schemathesis import Case, GenerationMode, checks

from elastic_inference.services.gateway import make_app
from elastic_inference.services.gateway.base import implemented_methods
from tests.conftest import REPO
from tests.credentials import NO_AUTH
from tests.processes import Service, get_json, http, wait_for
from tests.redis_server import RedisServer, free_port

pytestmark = pytest.mark.integration

SPEC_PATH = REPO / "doc" / "openapi.yaml"
#: Routes the spec leaves out on purpose (its description says so): the dashboard and the
#: plain page's files, and the websocket relay.
UNDESCRIBED = {"/{}", "/static/{}", "/ws"}
#: The stream the spec's example names and the face worker analyses.
STREAM = "megamind-face"
MAX_EXAMPLES = 50
CHECKS = [checks.not_a_server_error, checks.status_code_conformance,
          checks.content_type_conformance, checks.response_schema_conformance,
          checks.negative_data_rejection, checks.unsupported_method]
#: Where a job's URL source is pointed before it is sent: loopback, nothing listens on port 9,
#: so a generated URL never makes the analysis runner reach off the machine.
LOCAL_URL = "http://127.0.0.1:9/generated.mp4"

schema = schemathesis.openapi.from_path(SPEC_PATH)
schema.config.generation.update(max_examples=MAX_EXAMPLES)
# A job body over 16 KiB is refused with 413 before it is read: a rejection like 400.
_rejection = schema.config.checks.negative_data_rejection
_rejection.expected_statuses = [*_rejection.expected_statuses, "413"]


def spec() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(SPEC_PATH.read_text())
    return data


def template(path: str) -> str:
    """A path with its parameters blanked: ``/api/streams/{id}`` -> ``/api/streams/{}``."""
    return re.sub(r"\{[^}]*\}", "{}", path)


def route_template(pattern: str) -> str:
    """A Tornado route regex as a path template: a capturing group becomes ``{}``, a
    look-ahead or other ``(?...)`` group goes, escapes are undone."""
    out, depth, start = [], 0, 0
    for i, c in enumerate(pattern.rstrip("$")):
        if c == "\\" or (i and pattern[i - 1] == "\\"):
            if depth == 0:
                out.append(c)
            continue
        if c == "(":
            if depth == 0:
                start = i
            depth += 1
        elif c == ")":
            depth -= 1
            if depth == 0 and not pattern.startswith("(?", start):
                out.append("{}")
        elif depth == 0:
            out.append(c)
    return "".join(out).replace("\\", "")


def routes() -> dict[str, set[str]]:
    """Every route of the gateway (websocket relay and dashboard on) as template -> methods."""
    app = make_app(redis.Redis(), gatekeeper=NO_AUTH, websocket_upstream="ws://127.0.0.1:1/ws",
                   spa_dir=REPO / "spa" / "dist")
    table: dict[str, set[str]] = {}
    for rule in app.wildcard_router.rules:
        handler = rule.target
        regex = rule.matcher.regex.pattern  # type: ignore[attr-defined]
        assert isinstance(handler, type) and issubclass(handler, tornado.web.RequestHandler)
        table[route_template(regex)] = {m.lower() for m in implemented_methods(handler)}
    app.ctx.follow_pool.shutdown()
    app.ctx.executor.shutdown()
    return table


def test_route_templates_are_read_from_the_regexes() -> None:
    assert route_template(r"/api/streams/([^/]+)/snapshot\.jpg$") == "/api/streams/{}/snapshot.jpg"
    assert route_template(r"/api/analysis/([^/]+)/frames/([^/]+)\.jpg$") == \
        "/api/analysis/{}/frames/{}.jpg"
    assert route_template(r"/(?!api(?:/|$))(.+)$") == "/{}"
    assert route_template(r"/()$") == "/{}"


def test_every_gateway_route_is_described_and_every_described_path_is_routed() -> None:
    described = {template(p): {m for m in ops if m in ("get", "post", "delete", "put",
                                                       "patch", "head", "options")}
                 for p, ops in spec()["paths"].items()}
    table = routes()
    undocumented = {t: m for t, m in table.items()
                    if t not in UNDESCRIBED and described.get(t) != m}
    assert not undocumented, f"routes or methods missing from or wrong in doc/openapi.yaml: " \
                             f"{undocumented} (spec has {described})"
    unrouted = {t: m for t, m in described.items() if table.get(t) != m}
    assert not unrouted, f"paths of doc/openapi.yaml the gateway does not route: {unrouted}"


def test_the_spec_is_valid_openapi_3_1() -> None:
    data = spec()
    assert data["openapi"].startswith("3.1.")
    validate(data)  # raises, naming the place, on any departure from OpenAPI 3.1


def test_the_spec_says_what_it_leaves_out() -> None:
    description = spec()["info"]["description"]
    for left_out in ("`/ws`", "`/static/...`", "`/`"):
        assert left_out in description


# ----- against a running `ei up`


@dataclass(frozen=True)
class System:
    url: str
    job: str


def submit_job(url: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    status, _, raw = http(f"{url}/api/analysis", "POST", json.dumps(body).encode(),
                          {"Content-Type": "application/json"})
    return status, json.loads(raw)


@pytest.fixture(scope="module")
def system(redis_server: RedisServer) -> Iterator[System]:
    """``ei up`` on the test's Redis with one face worker, a live ``megamind-face`` stream with
    results, and one finished analysis job."""
    with redis.Redis.from_url(redis_server.url) as client:
        client.flushall()
    port, ws_port = free_port(), free_port()
    up = Service(["up", "--port", str(port), "--ws-port", str(ws_port), "--model-dir",
                  str(REPO / "models"), "--sample-dir", str(REPO / "samples"), "--fps", "4",
                  "--workers", "face", "--spa-dir", str(REPO / "spa" / "dist"),
                  # Schemathesis sends hundreds of requests per operation from one address.
                  "--job-rate", "100000/min", "--list-rate", "100000/min"],
                 env={"EI_REDIS_URL": redis_server.url}, own_group=True)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: get_json(f"{url}/api/streams/{STREAM}/latest")[0] == 200, 120,
                 f"results of {STREAM}")
        status, job = submit_job(url, {"source": "Megamind.avi", "types": ["face"],
                                       "frame_step": 10000, "name": "openapi"})
        assert status == 201, job
        wait_for(lambda: get_json(f"{url}/api/analysis/{job['id']}")[1]["status"] == "done",
                 120, "the analysis job to finish")
        yield System(url, job["id"])
        assert up.alive(), up.output()[-3000:]
    finally:
        up.stop(timeout=30)


def filled(path: str, system: System) -> str:
    """A spec path with real ids: the live stream, the finished job, its frame 0."""
    job = "/api/analysis/" in path
    return path.replace("{id}", system.job if job else STREAM).replace("{n}", "0")


def test_every_described_operation_is_served(system: System) -> None:
    """No operation of the spec falls through to the gateway's catch-all 404 or answers 405."""
    for path, ops in spec()["paths"].items():
        for method in ops:
            if method == "delete":
                # An unknown job: the route answers, the finished job stays for the others.
                target = f"{system.url}/api/analysis/j000000000000"
            else:
                target = system.url + filled(path, system)
            with requests.request(method.upper(), target, json={} if method == "post" else None,
                                  stream=True, timeout=30) as resp:
                body = b"" if "mixed-replace" in resp.headers.get("Content-Type", "") \
                    else resp.content
            assert resp.status_code != 405, (method, path, body)
            assert b"no such resource" not in body, (method, path, body)
            expected = {"post": 400, "delete": 404}.get(method, 200)
            assert resp.status_code == expected, (method, path, resp.status_code, body)


_picks = itertools.count()
#: Requests schemathesis sent per operation, and those answered 2xx, checked by the test
#: after it.
sent: Counter[str] = Counter()
succeeded: Counter[str] = Counter()


def prepare(case: Case, system: System) -> None:
    """Every other positive GET names the live stream or the finished job (a random id is
    almost always unknown), and half of those for a frame its stored frame 0; a job's URL
    source points at loopback."""
    positive = case.meta is None or case.meta.generation.mode == GenerationMode.POSITIVE
    params = case.path_parameters or {}
    if positive and case.method == "GET" and "id" in params:
        pick = next(_picks)  # counted over these cases only, so no other rhythm aligns with it
        if pick % 2:
            params["id"] = system.job if "/analysis/" in case.path else STREAM
            if "n" in params and pick % 4 == 1:
                params["n"] = 0  # the job's one stored frame
    if case.method == "POST" and isinstance(case.body, dict) \
            and "://" in str(case.body.get("source", "")):
        case.body["source"] = LOCAL_URL


def check_mjpeg(case: Case, system: System) -> int:
    """The MJPEG response never ends, so it is read by hand: its status, its type, and an
    error's JSON body."""
    kwargs = case.as_transport_kwargs(base_url=system.url)
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
    prepare(case, system)
    if case.path.endswith("/mjpeg"):
        status = check_mjpeg(case, system)
    else:
        response = case.call_and_validate(base_url=system.url, checks=CHECKS, timeout=30)
        status = response.status_code
        if status == 201:  # a job was submitted: gone at once, nothing piles up
            job = response.json()["id"]
            assert http(f"{system.url}/api/analysis/{job}", "DELETE")[0] == 204
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
