"""HTTPS on ``ei gateway`` (EI_TLS_CERT, EI_TLS_KEY), run as a real process against a real
redis-server with a certificate made here by the ``openssl`` command (doc/security.md, "TLS
and network policies")."""

from __future__ import annotations

import http.client
import json
import shutil
import ssl
import subprocess
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis
from websockets.sync.client import connect
from websockets.typing import Origin

from elastic_inference.core.auth import Role
from elastic_inference.core.authstore import AuthStore
from elastic_inference.core.tls import server_context
from tests.credentials import SECRET_ENV, bearer
from tests.processes import Service, wait_for
from tests.redis_server import free_port

pytestmark = pytest.mark.integration


@dataclass
class Pki:
    ca: Path
    cert: Path
    key: Path
    other_key: Path


def openssl(*args: str | Path) -> None:
    subprocess.run(["openssl", *map(str, args)], check=True, capture_output=True, timeout=60)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    """A CA, and a certificate for localhost and 127.0.0.1 that it signed."""
    assert shutil.which("openssl"), "the openssl command is needed to make test certificates"
    d = tmp_path_factory.mktemp("pki")
    ec = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes")
    openssl("req", "-x509", *ec, "-keyout", d / "ca.key", "-out", d / "ca.pem", "-days", "2",
            "-subj", "/CN=ei test CA")
    openssl("req", *ec, "-keyout", d / "key.pem", "-out", d / "req.csr",
            "-subj", "/CN=localhost")
    (d / "ext.cnf").write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    openssl("x509", "-req", "-in", d / "req.csr", "-CA", d / "ca.pem", "-CAkey", d / "ca.key",
            "-CAcreateserial", "-out", d / "cert.pem", "-days", "2",
            "-extfile", d / "ext.cnf")
    openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
            "-out", d / "other.key")
    return Pki(d / "ca.pem", d / "cert.pem", d / "key.pem", d / "other.key")


def ready(service: Service) -> bool:
    """/readyz on the metrics port, which stays plain HTTP for the kubelet's probes."""
    url = f"http://127.0.0.1:{service.metrics_port}/readyz"
    with urllib.request.urlopen(url, timeout=2) as r:
        return bool(r.status == 200)


@pytest.fixture
def https_gateway(redis_url: str, pki: Pki) -> Iterator[tuple[Service, int, int]]:
    """``ei websocket`` and ``ei gateway`` over HTTPS relaying /ws to it."""
    ws_port, port = free_port(), free_port()
    websocket = Service(["websocket", "--redis-url", redis_url, "--host", "127.0.0.1",
                         "--port", str(ws_port)], SECRET_ENV)
    gateway = Service(["gateway", "--redis-url", redis_url, "--host", "127.0.0.1",
                       "--port", str(port), "--websocket-upstream",
                       f"ws://127.0.0.1:{ws_port}/ws"],
                      env={"EI_TLS_CERT": str(pki.cert), "EI_TLS_KEY": str(pki.key),
                           **SECRET_ENV})
    for svc in (websocket, gateway):
        wait_for(lambda s=svc: ready(s) or not s.alive(),  # type: ignore[misc]
                 60, f"ei {svc.args[0]} ready")
        assert svc.alive(), svc.output()
    yield gateway, port, ws_port
    for svc in (gateway, websocket):
        assert svc.stop(timeout=15) == 0, svc.output()


PASSWORD = "correct horse battery staple"


def client_context(pki: Pki) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(pki.ca))


def login(port: int, pki: Pki) -> str:
    """Log in over HTTPS as the admin; the ``Set-Cookie`` header."""
    req = urllib.request.Request(
        f"https://localhost:{port}/api/login", method="POST",
        data=json.dumps({"name": "admin", "password": PASSWORD}).encode(),
        headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, context=client_context(pki), timeout=15) as resp:
        assert resp.status == 200
        return str(resp.headers["Set-Cookie"])


def test_gateway_speaks_https_only(https_gateway: tuple[Service, int, int], pki: Pki,
                                   redis_url: str) -> None:
    gateway, port, _ = https_gateway
    ctx = client_context(pki)
    with urllib.request.urlopen(f"https://localhost:{port}/healthz", context=ctx,
                                timeout=15) as resp:
        assert resp.status == 200
    req = urllib.request.Request(f"https://127.0.0.1:{port}/api/streams",
                                 headers=bearer(redis.Redis.from_url(redis_url), Role.VIEWER))
    with urllib.request.urlopen(req, context=ctx, timeout=15) as resp:
        assert resp.status == 200
        assert json.loads(resp.read()) == {"streams": []}
    # Over HTTPS the session cookie is Secure: a browser never sends it over plain HTTP.
    AuthStore(redis.Redis.from_url(redis_url)).add_user("admin", Role.ADMIN, PASSWORD)
    cookie = login(port, pki)
    assert "; Secure" in cookie and "; HttpOnly" in cookie and "SameSite=Strict" in cookie
    # Plain HTTP to the TLS port gets no HTTP answer: the server drops the connection.
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=15)
    with pytest.raises((http.client.HTTPException, ConnectionError)):
        conn.request("GET", "/healthz")
        conn.getresponse()
    conn.close()
    assert f"gateway on https://127.0.0.1:{port}/" in gateway.output()
    assert "PRIVATE KEY" not in gateway.output()


def test_websocket_relay_over_wss(https_gateway: tuple[Service, int, int], pki: Pki,
                                  redis_url: str) -> None:
    """The browser's side of the /ws relay is wss on the gateway's own origin; the session
    cookie of a login over HTTPS opens it."""
    _, port, _ = https_gateway
    AuthStore(redis.Redis.from_url(redis_url)).add_user("admin", Role.ADMIN, PASSWORD)
    cookie = login(port, pki).split(";", 1)[0]
    with connect(f"wss://localhost:{port}/ws", ssl=client_context(pki),
                 origin=Origin(f"https://localhost:{port}"), open_timeout=15,
                 additional_headers={"Cookie": cookie}) as ws:
        ws.send(json.dumps({"subscribe": ["no-such-stream"]}))
        ws.ping().wait(15)


def run_gateway(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """``ei gateway`` expected to stop at its settings, before it binds anything."""
    svc = Service(["gateway", "--port", "0"], env={**SECRET_ENV, **env})
    code = svc.proc.wait(timeout=60)
    svc._log.close()
    return subprocess.CompletedProcess(svc.args, code, svc.output(), "")


@pytest.mark.parametrize("case", ["missing key", "cert only", "not a key", "wrong key"])
def test_bad_certificate_or_key_is_a_settings_error(pki: Pki, tmp_path: Path,
                                                     case: str) -> None:
    missing = tmp_path / "missing.key"
    env, expected = {
        "missing key": ({"EI_TLS_CERT": str(pki.cert), "EI_TLS_KEY": str(missing)},
                        f"EI_TLS_KEY: cannot read {missing}"),
        "cert only": ({"EI_TLS_CERT": str(pki.cert)}, "EI_TLS_CERT and EI_TLS_KEY go together"),
        "not a key": ({"EI_TLS_CERT": str(pki.cert), "EI_TLS_KEY": str(pki.cert)},
                      f"EI_TLS_KEY: {pki.cert} holds no PEM private key"),
        "wrong key": ({"EI_TLS_CERT": str(pki.cert), "EI_TLS_KEY": str(pki.other_key)},
                      f"EI_TLS_CERT ({pki.cert}) and EI_TLS_KEY ({pki.other_key}) do not load"),
    }[case]
    done = run_gateway(env)
    assert done.returncode == 2, done.stdout
    assert "configuration error" in done.stdout and expected in done.stdout
    key_text = pki.other_key.read_text().splitlines()[1]
    assert key_text not in done.stdout


def test_server_context_refuses_old_protocols(pki: Pki) -> None:
    ctx = server_context(str(pki.cert), str(pki.key))
    assert ctx is not None and ctx.minimum_version == ssl.TLSVersion.TLSv1_2
    assert ctx.verify_mode == ssl.CERT_NONE  # browsers bring no client certificate
    assert server_context("", "") is None
