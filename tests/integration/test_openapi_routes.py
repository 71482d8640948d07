"""doc/openapi.yaml against the gateway's own routing table, both ways: a route added without
its path in the spec fails here, and so does a role, a credential or a public route the spec
states otherwise than the handlers. The spec is valid OpenAPI 3.1. Served and fuzzed against a
running ``ei up``: test_openapi.py.
"""

from __future__ import annotations

import re

import redis
from openapi_spec_validator import validate

from elastic_inference.core.auth import Role
from elastic_inference.services.gateway import make_app
from elastic_inference.services.gateway.base import (
    SAFE_METHODS,
    SecureHandler,
    implemented_methods,
)
from tests.conftest import REPO
from tests.credentials import NO_AUTH
from tests.openapi_doc import spec

#: Routes the spec leaves out on purpose (its description says so): the dashboard and the
#: plain page's files, and the websocket relay.
UNDESCRIBED = {"/{}", "/static/{}", "/ws"}
#: The two image routes a signed URL opens; any other path refuses it.
SIGNABLE_PATHS = {"/api/streams/{id}/snapshot.jpg", "/api/streams/{id}/mjpeg"}


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


def handlers() -> dict[str, type[SecureHandler]]:
    """Every route of the gateway (websocket relay and dashboard on) as template -> handler
    class. The gatekeeper is a placeholder: only the routing table is read."""
    app = make_app(redis.Redis(), gatekeeper=NO_AUTH, websocket_upstream="ws://127.0.0.1:1/ws",
                   spa_dir=REPO / "spa" / "dist")
    table: dict[str, type[SecureHandler]] = {}
    for rule in app.wildcard_router.rules:
        handler = rule.target
        regex = rule.matcher.regex.pattern  # type: ignore[attr-defined]
        assert isinstance(handler, type) and issubclass(handler, SecureHandler)
        table[route_template(regex)] = handler
    app.ctx.follow_pool.shutdown()
    app.ctx.executor.shutdown()
    return table


def routes() -> dict[str, set[str]]:
    """Every route of the gateway as template -> methods."""
    return {t: {m.lower() for m in implemented_methods(h)} for t, h in handlers().items()}


def required_role(handler: type[SecureHandler], method: str) -> Role | None:
    """The least role the handler lets ``method`` through with, as SecureHandler.authorize
    reads its ``access`` (a method missing from it needs an admin); None: public."""
    return handler.access.get(method.upper(), Role.ADMIN)


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


def test_every_operation_states_its_role_and_credentials_as_the_gateway_checks_them() -> None:
    """Public operations say ``security: []``; every other one names the handler's least
    role in ``x-required-role``, documents 401 (and 403 where a principal can be refused:
    above viewer, or a write, where a cookie needs its CSRF token), takes the cookie on a
    write only with the CSRF header, and a signed URL only on the two image routes."""
    data = spec()
    table = handlers()
    schemes = set(data["components"]["securitySchemes"])
    global_security = data["security"]
    assert global_security == [{"bearerAuth": []}, {"sessionCookie": []}]
    for path, ops in data["paths"].items():
        handler = table[template(path)]
        for method, op in ops.items():
            where = f"{method.upper()} {path}"
            role = required_role(handler, method)
            security = op.get("security", global_security)
            responses = op["responses"]
            if role is None:
                assert security == [] and "x-required-role" not in op, where
                continue
            assert op.get("x-required-role") == str(role), (where, str(role))
            assert security and all(set(r) <= schemes for r in security), where
            assert responses.get("401") == {"$ref": "#/components/responses/Unauthorized"}, where
            write = method.upper() not in SAFE_METHODS
            assert ("403" in responses) == (role > Role.VIEWER or write), where
            assert {"bearerAuth": []} in security, where
            for requirement in security:
                if "sessionCookie" in requirement:
                    assert ("csrfToken" in requirement) == write, where
            signed_url: dict[str, list[str]] = {"signedUrlExpiry": [], "signedUrlSignature": []}
            assert (signed_url in security) == (path in SIGNABLE_PATHS and method == "get"), where
    assert "429" in data["paths"]["/api/login"]["post"]["responses"]
