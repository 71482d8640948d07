"""Host allow-list, Origin check and the ``Server`` header, on ``ei gateway`` and
``ei websocket`` run as real processes against a real redis-server (doc/security.md,
"Hosts and origins")."""

from __future__ import annotations

import http.client
import json
import socket
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import redis
from websockets.exceptions import InvalidStatus
from websockets.sync.client import ClientConnection, connect
from websockets.typing import Origin

from elastic_inference.core.auth import Role
from tests.credentials import SECRET_ENV, bearer
from tests.processes import Service, wait_for
from tests.redis_server import free_port

pytestmark = pytest.mark.integration

SERVER = "elastic-inference"


@dataclass
class Services:
    gateway: Service
    websocket: Service
    port: int
    ws_port: int
    #: A viewer's token: credentials are checked after Host and Origin.
    auth: dict[str, str]

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def ready(service: Service) -> bool:
    url = f"http://127.0.0.1:{service.metrics_port}/readyz"
    with urllib.request.urlopen(url, timeout=2) as r:
        return bool(r.status == 200)


def start(redis_url: str, *extra: str) -> Services:
    """``ei websocket`` and ``ei gateway`` relaying /ws to it, as ``ei up`` runs them."""
    ws_port, port = free_port(), free_port()
    websocket = Service(["websocket", "--redis-url", redis_url, "--host", "127.0.0.1",
                         "--port", str(ws_port), "--trusted-proxies", "127.0.0.1", *extra],
                        SECRET_ENV)
    gateway = Service(["gateway", "--redis-url", redis_url, "--host", "127.0.0.1",
                       "--port", str(port), "--websocket-upstream",
                       f"ws://127.0.0.1:{ws_port}/ws", *extra], SECRET_ENV)
    for svc in (websocket, gateway):
        wait_for(lambda s=svc: ready(s) or not s.alive(),  # type: ignore[misc]
                 30, f"ei {svc.args[0]} ready")
        assert svc.alive(), svc.output()
    return Services(gateway, websocket, port, ws_port,
                    bearer(redis.Redis.from_url(redis_url), Role.VIEWER))


@pytest.fixture
def services(redis_url: str) -> Iterator[Services]:
    svc = start(redis_url)
    yield svc
    for s in (svc.gateway, svc.websocket):
        assert s.stop(timeout=15) == 0, s.output()


def request(port: int, path: str, host: str | None,
            headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    """One GET with exactly this ``Host`` (None: no Host header at all)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=15)
    try:
        conn.putrequest("GET", path, skip_host=True)
        if host is not None:
            conn.putheader("Host", host)
        for name, value in (headers or {}).items():
            conn.putheader(name, value)
        conn.endheaders()
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def raw_request(port: int, head: bytes) -> bytes:
    """Send a request head as bytes (http.client refuses control characters)."""
    with socket.create_connection(("127.0.0.1", port), timeout=15) as s:
        s.sendall(head)
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    return data


def ws_connect(url: str, origin: str | None, via: int = 0,
               auth: dict[str, str] | None = None) -> ClientConnection:
    """A websocket handshake sending ``origin`` (and ``auth``); ``via``: over a connection to
    this port of 127.0.0.1, whatever host ``url`` names (so that it goes in ``Host``)."""
    sock = socket.create_connection(("127.0.0.1", via)) if via else None
    return connect(url, origin=Origin(origin) if origin else None, sock=sock, open_timeout=15,
                   additional_headers=auth)


PATHS = ["/", "/api/streams", "/api/status", "/api/streams/cam1/mjpeg",
         "/api/analysis", "/no/such/page", "/ws"]


def test_a_foreign_host_gets_400_json_on_every_route(services: Services) -> None:
    for path in PATHS:
        code, headers, body = request(services.port, path, "evil.example")
        assert code == 400, (path, code, body)
        assert headers["content-type"].startswith("application/json")
        assert "Host header not allowed" in json.loads(body)["error"]
        assert headers["server"] == SERVER
    # A port, another case, or a name that only starts like an allowed one change nothing.
    for host in (f"evil.example:{services.port}", "localhost.evil.example",
                 "127.0.0.1.nip.io", "EVIL.example"):
        assert request(services.port, "/api/streams", host)[0] == 400, host
    # No Host: Tornado itself refuses it from HTTP/1.1; HTTP/1.0 may leave it out.
    assert request(services.port, "/api/streams", None)[0] == 400
    answer = raw_request(services.port, b"GET /api/streams HTTP/1.0\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 400 ") and b"Host header missing" in answer


def test_loopback_hosts_pass_and_health_answers_any_host(services: Services) -> None:
    for host in (f"127.0.0.1:{services.port}", f"localhost:{services.port}", "LOCALHOST",
                 f"[::1]:{services.port}", "127.0.0.1"):
        code, headers, body = request(services.port, "/api/streams", host, services.auth)
        assert (code, json.loads(body)) == (200, {"streams": []}), host
        assert headers["server"] == SERVER
    # Probes and load balancers name the pod by its address: health ignores Host.
    for path in ("/healthz", "/readyz"):
        code, headers, _ = request(services.port, path, "10.1.2.3:8080")
        assert code == 200, path
        assert headers["server"] == SERVER


def test_server_header_carries_no_version(services: Services) -> None:
    host = f"127.0.0.1:{services.port}"
    for path in [*PATHS, "/static/no-such-file"]:
        _, headers, _ = request(services.port, path, host)
        assert headers["server"] == SERVER, path
        assert "tornado" not in json.dumps(headers).lower()


def test_a_refused_host_is_logged_cut_and_undecoded(services: Services) -> None:
    # Tornado refuses a Host with control bytes or outside RFC 3986's host syntax itself
    # (plain 400); what reaches the allow-list is cut and quoted, escapes left undecoded.
    assert raw_request(services.port, b"GET / HTTP/1.1\r\nHost: ev\x1bil.example\r\n"
                       b"Connection: close\r\n\r\n").startswith(b"HTTP/1.1 400 ")
    answer = raw_request(services.port, b"GET / HTTP/1.1\r\nHost: ev%1b[2Jil$(id);"
                         + b"x" * 5000 + b"\r\nConnection: close\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 400 ") and b"Host header not allowed" in answer
    # The service writes the line only after answering: wait for it.
    line = wait_for(lambda: next((ln for ln in services.gateway.output().splitlines()
                                  if "refusing Host" in ln), None), 10, "the log line")
    assert "'ev%1b[2Jil$(id);xxx" in line and "\x1b" not in line
    assert "x" * 100 not in line  # cut to 100 characters


def test_foreign_origin_is_refused_on_both_websocket_endpoints(services: Services) -> None:
    direct = f"ws://127.0.0.1:{services.ws_port}/ws"
    relay = f"ws://127.0.0.1:{services.port}/ws"
    for url in (direct, relay):
        for origin in ("http://evil.example", "https://127.0.0.1.evil.example", "null",
                       "http://localhost.evil.example:8080"):
            with pytest.raises(InvalidStatus) as info:
                ws_connect(url, origin)
            assert info.value.response.status_code == 403, (url, origin)
            assert b"Origin not allowed" in info.value.response.body
    # The websocket service sends no Server header at all; the gateway its name only.
    with pytest.raises(InvalidStatus) as info:
        ws_connect(direct, "http://evil.example")
    assert "Server" not in info.value.response.headers


def test_the_dashboards_origin_and_non_browsers_pass(services: Services) -> None:
    """The dashboard's origin is the gateway's own; the relay's upstream connection (which
    sends no Origin) passes the websocket service's check, so frames flow through it."""
    own = services.origin
    for url, origin in ((f"ws://127.0.0.1:{services.port}/ws", own),
                        (f"ws://127.0.0.1:{services.port}/ws", f"http://localhost:{services.port}"),
                        (f"ws://127.0.0.1:{services.ws_port}/ws", own),
                        (f"ws://127.0.0.1:{services.port}/ws", None),
                        (f"ws://127.0.0.1:{services.ws_port}/ws", None)):
        with ws_connect(url, origin, auth=services.auth) as ws:
            assert json.loads(ws.recv(timeout=15)) == {"streams": []}, (url, origin)


def test_listed_hosts_and_origins_replace_the_defaults(redis_url: str) -> None:
    svc = start(redis_url, "--allowed-hosts", ".example.com,10.0.0.7",
                "--allowed-origins", "https://ei.example.com")
    try:
        for host, want in (("example.com", 200), ("ei.example.com:8443", 200),
                           ("a.b.example.com", 200), ("10.0.0.7", 200),
                           ("badexample.com", 400), ("127.0.0.1", 400), ("localhost", 400)):
            assert request(svc.port, "/api/streams", host, svc.auth)[0] == want, host
        for port in (svc.port, svc.ws_port):
            # Host: ei.example.com, over a connection to this machine.
            url = f"ws://ei.example.com:{port}/ws"
            with ws_connect(url, "https://ei.example.com", via=port, auth=svc.auth) as ws:
                assert json.loads(ws.recv(timeout=15)) == {"streams": []}
            for origin in ("http://ei.example.com", "https://other.example.com",
                           f"http://127.0.0.1:{svc.port}"):
                with pytest.raises(InvalidStatus) as info:
                    ws_connect(url, origin, via=port)
                assert info.value.response.status_code == 403, (port, origin)
        # The gateway's own origin passes its relay even when not listed: it served the page.
        own = f"http://ei.example.com:{svc.port}"
        with ws_connect(f"ws://ei.example.com:{svc.port}/ws", own, via=svc.port,
                        auth=svc.auth) as ws:
            assert json.loads(ws.recv(timeout=15)) == {"streams": []}
    finally:
        for s in (svc.gateway, svc.websocket):
            assert s.stop(timeout=15) == 0, s.output()
