"""Bad input answers 400 with a JSON error, and no secret reaches a log or an answer.

Real processes (``ei gateway``, ``ei analysis``) on a real password-protected redis-server;
their whole logs are searched for every secret the test used.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from elastic_inference.core.auth import Role
from elastic_inference.core.authstore import AuthStore
from tests.credentials import SECRET, SECRET_ENV
from tests.processes import Service, http, wait_for
from tests.redis_server import RedisServer, free_port

pytestmark = pytest.mark.integration

REDIS_PASSWORD = "redisPW-4f1c"
CAMERA_PASSWORD = "camPW-93ab"
URL_TOKEN = "tok-7d2e"
QUERY_TOKEN = "qtok-51aa"
LOGIN_PASSWORD = "loginPW-0c3d-long"
#: Every secret the test uses; the token and session cookie of the run are added to it.
SECRETS = [REDIS_PASSWORD, CAMERA_PASSWORD, URL_TOKEN, QUERY_TOKEN, SECRET, LOGIN_PASSWORD]
JSON = {"Content-Type": "application/json"}
#: The credentials ``call`` sends (an operator token, made by the test).
AUTH: dict[str, str] = {}


@pytest.fixture(scope="module")
def private_redis() -> Iterator[RedisServer]:
    server = RedisServer(password=REDIS_PASSWORD).start()
    yield server
    server.stop()


def call(port: int, path: str, method: str = "GET", body: bytes | None = None,
         headers: dict[str, str] | None = None) -> tuple[int, Any]:
    code, head, raw = http(f"http://127.0.0.1:{port}{path}", method, body,
                           {**AUTH, **(headers or {})})
    assert head["Content-Type"].startswith("application/json"), (path, code, raw[:200])
    return code, json.loads(raw)


def assert_no_secret(text: str, where: str) -> None:
    leaked = [s for s in SECRETS if s in text]
    assert not leaked, f"{where} shows {leaked}"


def test_bad_input_is_400_and_secrets_stay_hidden(private_redis: RedisServer,
                                                  tmp_path: Path) -> None:
    # The camera job below reads loopback: listed explicitly (doc/security.md).
    env = {"EI_REDIS_URL": private_redis.url, "EI_LOG_LEVEL": "DEBUG",
           "EI_SOURCE_ALLOW": "127.0.0.1", **SECRET_ENV}
    client = redis.Redis.from_url(private_redis.url)
    client.flushall()
    token = AuthStore(client).create_token(Role.OPERATOR).token
    AuthStore(client).add_user("ops", Role.OPERATOR, LOGIN_PASSWORD)
    AUTH.update({"Authorization": f"Bearer {token}"})
    SECRETS.append(token)
    port = free_port()
    gateway = Service(["gateway", "--host", "127.0.0.1", "--port", str(port),
                       "--media-dir", str(tmp_path)], env)
    runner = Service(["analysis", "--media-dir", str(tmp_path)], env)
    camera = (f"http://admin:{CAMERA_PASSWORD}@127.0.0.1:{free_port()}/cam.mjpg"
              f"?token={URL_TOKEN}&res=hd")
    stream = Service(["stream", "--source", camera, "--stream-id", "cam", "--types", "people",
                      "--max-retries", "1"], env)
    try:
        wait_for(lambda: not gateway.alive() or http(
            f"http://127.0.0.1:{port}/readyz")[0] == 200, 30, "the gateway to be ready")
        assert gateway.alive(), gateway.output()
        # A login, right and wrong: neither the password nor the session id is ever logged.
        login = json.dumps({"name": "ops", "password": LOGIN_PASSWORD}).encode()
        code, head, _ = http(f"http://127.0.0.1:{port}/api/login", "POST", login, JSON)
        assert code == 200
        SECRETS.append(head["Set-Cookie"].split(";")[0].split(".")[1])  # the session id
        wrong = json.dumps({"name": "ops", "password": LOGIN_PASSWORD + "x"}).encode()
        assert http(f"http://127.0.0.1:{port}/api/login", "POST", wrong, JSON)[0] == 401
        bad = [
            ("/api/analysis", "POST", b'{"source": "\\ud800", "types": ["people"]}',
             "lone surrogate"),
            ("/api/analysis", "POST", b'{"source": "v.avi", "types": ["people"], '
                                      b'"name": "\\udfff"}', "lone surrogate"),
            ("/api/analysis", "POST", b'{"source": "http://cam/x?m=a@b", "types": ["people"]}',
             "percent-encode"),
            ("/static/%00", "GET", None, "control characters"),
            ("/%00", "GET", None, "control characters"),
            ("/index.html%00", "GET", None, "control characters"),
            ("/static/%ED%A0%80", "GET", None, "unicode"),
            ("/api/streams/cam/results?since=%ED%A0%80", "GET", None, "not utf-8"),
            ("/api/analysis?limit=%00", "GET", None, "limit"),
            ("/api/streams/%00", "GET", None, "stream id"),
        ]
        for path, method, body, reason in bad:
            code, answer = call(port, path, method, body, JSON if body else None)
            assert code == 400 and reason in answer["error"].lower(), (path, body, answer)

        source = (f"http://admin:{CAMERA_PASSWORD}@127.0.0.1:{free_port()}/cam.mjpg"
                  f"?token={URL_TOKEN}&res=hd")
        code, job = call(port, "/api/analysis", "POST",
                         json.dumps({"source": source, "types": ["people"]}).encode(), JSON)
        assert code == 201, job
        assert job["source"].startswith("http://admin:***@127.0.0.1:")
        assert job["source"].endswith("/cam.mjpg?token=***&res=hd")
        failed = wait_for(lambda: (lambda j: j if j["status"] == "failed" else None)(
            call(port, f"/api/analysis/{job['id']}")[1]), 60, "the runner to fail the job")
        assert "cannot open the source http://admin:***@" in failed["error"], failed
        code, listing = call(port, f"/api/analysis?token={QUERY_TOKEN}")
        assert code == 200
        streams = wait_for(lambda: call(port, "/api/streams")[1]["streams"], 30,
                           "the failing camera stream to register")
        assert streams[0]["source"].startswith("http://admin:***@127.0.0.1:"), streams
        wait_for(lambda: "giving up" in stream.output(), 30, "the stream to give up")
        for answer in (failed, listing, streams):
            assert_no_secret(json.dumps(answer), "an API answer")
    finally:
        gateway.stop()
        runner.stop()
        stream.stop()
    for service in (gateway, runner, stream):
        log = service.output()
        assert_no_secret(log, f"the log of ei {service.args[0]}")
        assert "Traceback" not in log and " 500 " not in log, log[-3000:]
    assert "token=***" in gateway.output()  # the query was logged, redacted
    assert "http://admin:***@127.0.0.1" in runner.output()


@pytest.mark.parametrize("url", [
    f"htp://:{REDIS_PASSWORD}@h/0", f"redis:/:{REDIS_PASSWORD}@h",
    f"redis://:{REDIS_PASSWORD}@h:port/0", f"redis://:{REDIS_PASSWORD}/x@h/0",
])
def test_a_bad_redis_url_is_refused_without_showing_it(url: str) -> None:
    service = Service(["gateway", "--port", str(free_port())], {"EI_REDIS_URL": url})
    code = service.proc.wait(timeout=30)
    service.stop()
    output = service.output()
    assert code == 2, output
    assert "EI_REDIS_URL" in output
    assert_no_secret(output, "the config error")
