"""Quotas on the gateway (doc/security.md#quotas): job creation and listing are rate-limited
per principal (here: one operator token per test client) on a real redis-server over real
HTTP; the limit is shared through Redis."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from elastic_inference.core.auth import Role
from elastic_inference.core.clients import ConnectionLimits, parse_networks
from elastic_inference.core.ratelimit import Rate
from elastic_inference.services.gateway import REDIS_DOWN_MESSAGE
from tests.analysis_api import job_body
from tests.credentials import bearer
from tests.gateway_app import GatewayThread
from tests.processes import http
from tests.redis_server import free_port

pytestmark = pytest.mark.integration

JOBS, LISTS = Rate(5, 60.0), Rate(3, 60.0)  # bursts of 5 and 3; then one per 12 s, 20 s
#: The token of each test client, made at its first request (cleared with Redis per test).
TOKENS: dict[str, dict[str, str]] = {}


@pytest.fixture
def gateway(redis_url: str, tmp_path: Path) -> Iterator[GatewayThread]:
    (tmp_path / "v.avi").write_bytes(b"not really a video")  # sources are checked, not read
    TOKENS.clear()
    # All from one address, which does not matter: the principal is what is counted.
    limits = ConnectionLimits(trusted=tuple(parse_networks(("127.0.0.0/8",))))
    gw = GatewayThread(redis_url, media_dir=tmp_path, limits=limits, job_rate=JOBS,
                       list_rate=LISTS)
    yield gw
    gw.stop()


def call(gw: GatewayThread, method: str, path: str, client: str) -> tuple[int, Any, Any]:
    """A request of ``client``, with its own operator token."""
    if client not in TOKENS:
        try:
            TOKENS[client] = bearer(gw.client, Role.OPERATOR)
        except redis.ConnectionError:  # Redis is down: any well-formed token
            TOKENS[client] = {"Authorization": "Bearer ei_" + "A" * 43}
    headers = {"X-Forwarded-For": "192.0.2.200", "Content-Type": "application/json",
               **TOKENS[client]}
    code, head, raw = http(gw.url + path, method, job_body() if method == "POST" else None,
                           headers)
    assert head["Content-Type"].startswith("application/json"), (path, code, raw[:200])
    return code, head, json.loads(raw)


def test_job_creation_beyond_the_burst_gets_429_with_retry_after(
        gateway: GatewayThread) -> None:
    for _ in range(JOBS.count):
        code, _, job = call(gateway, "POST", "/api/analysis", "192.0.2.1")
        assert code == 201, job
    code, head, body = call(gateway, "POST", "/api/analysis", "192.0.2.1")
    assert code == 429, body
    assert int(head["Retry-After"]) in range(1, 13)  # one interval (60/5 s), whole seconds
    assert "too many analysis jobs" in body["error"]
    assert head["Cache-Control"] == "no-store"
    # The refused request created nothing; another client is unaffected.
    assert len(call(gateway, "GET", "/api/analysis", "192.0.2.9")[2]["jobs"]) == JOBS.count
    assert call(gateway, "POST", "/api/analysis", "192.0.2.2")[0] == 201
    # A malformed request is refused for what it is, without spending the quota.
    code, _, body = http(gateway.url + "/api/analysis", "POST", b"{",
                         {"Content-Type": "application/json", **TOKENS["192.0.2.1"]})
    assert code == 400


def test_listing_beyond_the_burst_gets_429_and_other_clients_still_list(
        gateway: GatewayThread) -> None:
    for _ in range(LISTS.count):
        assert call(gateway, "GET", "/api/analysis", "192.0.2.1")[0] == 200
    code, head, body = call(gateway, "GET", "/api/analysis?limit=5", "192.0.2.1")
    assert code == 429 and "too many job listings" in body["error"], body
    assert int(head["Retry-After"]) in range(1, 21)
    assert call(gateway, "GET", "/api/analysis", "192.0.2.2")[0] == 200
    # Listing and creating are separate limits.
    assert call(gateway, "POST", "/api/analysis", "192.0.2.1")[0] == 201


def test_the_listing_is_capped_and_paged(gateway: GatewayThread) -> None:
    ids = [call(gateway, "POST", "/api/analysis", f"192.0.2.{i}")[2]["id"] for i in range(4)]
    code, _, body = call(gateway, "GET", "/api/analysis?limit=101", "198.51.100.1")
    assert code == 400 and "invalid limit 101" in body["error"]
    pages = [call(gateway, "GET", f"/api/analysis?limit=3&offset={o}", "198.51.100.2")[2]
             for o in (0, 3)]
    assert [j["id"] for p in pages for j in p["jobs"]] == ids[::-1]  # newest first


def test_redis_down_answers_503_not_a_crash(tmp_path: Path) -> None:
    """The limiter needs Redis like the job store does: an outage is the usual 503, and the
    gateway answers again once it is back (here: it never is, the port is closed)."""
    (tmp_path / "v.avi").write_bytes(b"x")
    TOKENS.clear()
    gw = GatewayThread(f"redis://127.0.0.1:{free_port()}/0", media_dir=tmp_path,
                       job_rate=JOBS, list_rate=LISTS)
    try:
        for method in ("POST", "GET"):
            code, head, body = call(gw, method, "/api/analysis", "192.0.2.1")
            assert (code, body) == (503, {"error": REDIS_DOWN_MESSAGE}), method
            assert "Retry-After" not in head
        assert call(gw, "GET", "/healthz", "192.0.2.1")[0] == 200
    finally:
        gw.stop()


def test_replicas_share_one_limit(gateway: GatewayThread, redis_url: str,
                                  tmp_path: Path) -> None:
    limits = ConnectionLimits(trusted=tuple(parse_networks(("127.0.0.0/8",))))
    other = GatewayThread(redis_url, media_dir=tmp_path, limits=limits, job_rate=JOBS,
                          list_rate=LISTS)
    try:
        replicas = [gateway, other] * LISTS.count
        assert [call(gw, "GET", "/api/analysis", "192.0.2.1")[0]
                for gw in replicas[:LISTS.count + 1]] == [200] * LISTS.count + [429]
        assert call(replicas[LISTS.count + 1], "GET", "/api/analysis", "192.0.2.1")[0] == 429
    finally:
        other.stop()
