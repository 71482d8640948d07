"""Gateway without Redis: query parameters, CSP, MJPEG parts, and the HTTP surface via
Tornado's test client, with a fake client that behaves like Redis being down. The dashboard's
files: test_gateway_dashboard.py."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from tornado.testing import AsyncHTTPTestCase

from elastic_inference.core.errors import ConfigError
from elastic_inference.core.metrics import HTTP_REQUESTS, GatewayMetrics
from elastic_inference.core.ratelimit import Rate
from elastic_inference.core.runtime import ServiceRuntime
from elastic_inference.core.settings import GatewaySettings, UpSettings, parse_settings
from elastic_inference.services.gateway import (
    MAX_JOB_BODY,
    MJPEG_BOUNDARY,
    REDIS_DOWN_MESSAGE,
    ParamError,
    content_security_policy,
    make_app,
    mjpeg_part,
    parse_fps,
    parse_frame_number,
    parse_int,
    parse_label,
    parse_limit,
    parse_number,
    parse_range,
    parse_step,
)
from elastic_inference.services.local import LocalSystem
from tests.analysis_api import job_body
from tests.credentials import NO_AUTH, SECRET_ENV
from tests.fakes import SECURITY_HEADERS, DownRedis

# -- pure helpers ------------------------------------------------------------------------------


def test_csp_forbids_inline_and_eval_and_allows_websocket_origin() -> None:
    csp = content_security_policy("wss://ws.example.com:8443/ws")
    assert "default-src 'self'" in csp
    assert "script-src 'self';" in csp and "style-src 'self';" in csp
    assert "img-src 'self' data: blob:" in csp
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert "connect-src 'self' wss://ws.example.com:8443;" in csp
    for same_origin in ("", "/ws"):  # the /ws proxy or an Ingress route: 'self' covers it
        assert "connect-src 'self';" in content_security_policy(same_origin)


# -- query parameters --------------------------------------------------------------------------

NOW = 1_718_000_000.0


def test_range_defaults_to_the_last_five_minutes() -> None:
    assert parse_range(None, None, NOW) == (NOW - 300, NOW)
    assert parse_range("", "", NOW) == (NOW - 300, NOW)  # empty = not given
    assert parse_range(None, "1000.5", NOW) == (700.5, 1000.5)
    assert parse_range(str(NOW - 60), None, NOW) == (NOW - 60, NOW)
    assert parse_range("100", "200", NOW) == (100.0, 200.0)
    assert parse_range(None, "100", NOW) == (0.0, 100.0)  # never before the epoch


@pytest.mark.parametrize(("since", "until", "words"), [
    ("abc", None, ("since", "number")),
    (None, "12:00", ("until", "number")),
    ("nan", None, ("since", "number")),
    ("inf", None, ("since", "number")),
    ("-5", None, ("since", "between")),
    (None, "1e300", ("until", "between")),
    ("200", "100", ("since", "after until")),
    ("0", str(24 * 3600 + 1), ("since", "24 h")),
])
def test_range_errors_name_the_parameter(since: str | None, until: str | None,
                                         words: tuple[str, ...]) -> None:
    with pytest.raises(ParamError) as err:
        parse_range(since, until, NOW)
    for word in words:
        assert word in str(err.value)


def test_a_full_day_is_allowed() -> None:
    assert parse_range("0", str(24 * 3600), NOW) == (0.0, 86400.0)


def test_limit() -> None:
    assert parse_limit(None) == parse_limit("") == 1000
    assert parse_limit("1") == 1 and parse_limit("10000") == 10000
    for bad in ("0", "10001", "-1", "1.5", "ten"):
        with pytest.raises(ParamError, match="limit"):
            parse_limit(bad)


def test_label() -> None:
    assert parse_label(None) is None and parse_label("") is None
    assert parse_label("Vehicle registration plate") == "Vehicle registration plate"
    assert parse_label("x" * 64) == "x" * 64
    assert parse_label("Gesicht \u00fc") == "Gesicht \u00fc"
    with pytest.raises(ParamError, match=r"label.*64"):
        parse_label("x" * 65)
    for bad in ("a\x00b", "a\nb", "tab\t", "del\x7f", "c1\x85"):
        with pytest.raises(ParamError, match=r"label.*control"):
            parse_label(bad)


def test_step() -> None:
    assert parse_step(None, 0, 300) == 10.0
    assert parse_step("1", 0, 1000) == 1.0  # exactly 1000 buckets
    assert parse_step("3600", 0, 86400) == 3600.0
    for bad, words in (("0.5", "between"), ("3601", "between"), ("ten", "number"),
                       ("1", "1001 buckets")):
        with pytest.raises(ParamError, match=f"step.*{words}"):
            parse_step(bad, 0, 1001)
    with pytest.raises(ParamError, match="at least 87 s"):
        parse_step("60", 0, 86400)


def test_fps() -> None:
    assert parse_fps(None) == 10.0 and parse_fps("1") == 1.0 and parse_fps("30") == 30.0
    assert parse_fps("2.5") == 2.5
    for bad in ("0", "0.5", "31", "fast", "nan"):
        with pytest.raises(ParamError, match="fps"):
            parse_fps(bad)


def test_int() -> None:
    assert parse_int("offset", None, 0, 0, 10) == 0 and parse_int("offset", "", 3, 0, 10) == 3
    assert parse_int("offset", "10", 0, 0, 10) == 10
    with pytest.raises(ParamError, match=r"^invalid offset -1: must be between 0 and 10$"):
        parse_int("offset", "-1", 0, 0, 10)
    with pytest.raises(ParamError, match=r"^invalid offset '2.0': must be an integer$"):
        parse_int("offset", "2.0", 0, 0, 10)
    for raw in ("\u0665", " 5", "5 ", "1_0", "+5", "0x5"):
        with pytest.raises(ParamError, match="must be a number"):
            parse_number("fps", raw, 10.0, 1.0, 30.0)
    assert parse_number("fps", "2.5", 10.0, 1.0, 30.0) == 2.5
    assert parse_number("since", "1.7e9", 0.0, 0.0, 2e9) == 1.7e9
    # int() would take all of these: other scripts' digits, spaces, signs, underscores.
    for raw in ("\u1095", "\u0665", " 5", "5 ", "+5", "1_0", "0x5", "9" * 19):
        with pytest.raises(ParamError, match="must be an integer"):
            parse_int("ttl", raw, 0, 0, 10)


def test_frame_number() -> None:
    assert parse_frame_number("0") == 0 and parse_frame_number("790") == 790
    assert parse_frame_number("999999999") == 999_999_999
    for bad in ("", "-1", "01", "1.0", "1e3", " 1", "x", "1000000000", "\u0661"):
        with pytest.raises(ParamError, match="invalid frame number"):
            parse_frame_number(bad)


def test_mjpeg_part_is_boundary_headers_jpeg_crlf() -> None:
    part = mjpeg_part(b"\xff\xd8jpeg\xff\xd9")
    assert part == (f"--{MJPEG_BOUNDARY}\r\nContent-Type: image/jpeg\r\n"
                    "Content-Length: 8\r\n\r\n").encode() + b"\xff\xd8jpeg\xff\xd9\r\n"


# -- settings and ei up ----------------------------------------------------------------------------


def test_gateway_settings() -> None:
    s = parse_settings(GatewaySettings, [], SECRET_ENV)
    assert (s.spa_dir, s.websocket_upstream, s.websocket_url) == (Path("spa/dist"), "", "")
    assert s.media_dir == Path("media")
    media = {**SECRET_ENV, "EI_MEDIA_DIR": "/opt/ei/media"}
    assert parse_settings(GatewaySettings, [], media).media_dir == Path("/opt/ei/media")
    assert (s.max_mjpeg_clients, s.max_proxy_clients) == (20, 200)
    env = {**SECRET_ENV, "EI_WEBSOCKET_UPSTREAM": "ws://ei-websocket:8081/ws",
           "EI_WEBSOCKET_URL": "/ws",
           "EI_SPA_DIR": "/opt/ei/spa", "EI_MAX_MJPEG_CLIENTS": "3"}
    s = parse_settings(GatewaySettings, [], env)
    assert s.websocket_upstream == "ws://ei-websocket:8081/ws" and s.websocket_url == "/ws"
    assert s.spa_dir == Path("/opt/ei/spa") and s.max_mjpeg_clients == 3
    wss = {**SECRET_ENV, "EI_WEBSOCKET_URL": "wss://h.example/ws"}
    assert parse_settings(GatewaySettings, [], wss)
    for name, value in (("EI_WEBSOCKET_UPSTREAM", "/ws"),
                        ("EI_WEBSOCKET_UPSTREAM", "http://127.0.0.1:8081/ws"),
                        ("EI_WEBSOCKET_UPSTREAM", "ws://user:secret@h/ws"),
                        ("EI_WEBSOCKET_URL", "http://h/ws"),
                        ("EI_WEBSOCKET_URL", "//h/ws"),
                        ("EI_MAX_MJPEG_CLIENTS", "0"),
                        ("EI_MAX_PROXY_CLIENTS", "0"),
                        ("EI_JOB_RATE", "60"), ("EI_LIST_RATE", "5/week")):
        with pytest.raises(ConfigError, match=name):
            parse_settings(GatewaySettings, [], {**SECRET_ENV, name: value})


def test_quota_settings_reach_the_gateway(tmp_path: Path) -> None:
    s = parse_settings(GatewaySettings, [], SECRET_ENV)
    assert (Rate.parse(s.job_rate), Rate.parse(s.list_rate)) == (Rate(60, 60.0), Rate(120, 60.0))
    s = parse_settings(GatewaySettings, [],
                       {**SECRET_ENV, "EI_JOB_RATE": "off", "EI_LIST_RATE": "10/s"})
    assert (Rate.parse(s.job_rate), Rate.parse(s.list_rate)) == (None, Rate(10, 1.0))
    up = parse_settings(UpSettings, ["--sample-dir", str(tmp_path), "--job-rate", "7/h",
                                     "--login-rate", "3/min"], {})
    system = LocalSystem(up, "redis://127.0.0.1:1/0", ServiceRuntime("t"), "s" * 43)
    [gateway] = [c for c in system.children if c.args[0] == "gateway"]
    given = parse_settings(GatewaySettings, gateway.args[1:], gateway.env)
    assert (given.job_rate, given.list_rate, given.login_rate) == ("7/h", "120/min", "3/min")
    # The secret reaches the two services that check credentials, in their environment only.
    holders = {c.args[0] for c in system.children if c.env.get("EI_SESSION_SECRET")}
    assert holders == {"gateway", "websocket"} and given.session_secret == "s" * 43
    assert not any("s" * 43 in " ".join(c.args) for c in system.children)


@pytest.mark.parametrize(("host", "upstream"), [
    ("127.0.0.1", "ws://127.0.0.1:8081/ws"), ("0.0.0.0", "ws://127.0.0.1:8081/ws"),
    ("::", "ws://[::1]:8081/ws"), ("192.0.2.7", "ws://192.0.2.7:8081/ws")])
def test_ei_up_starts_the_gateway_behind_its_own_ws_proxy(tmp_path: Path, host: str,
                                                          upstream: str) -> None:
    s = parse_settings(UpSettings, ["--sample-dir", str(tmp_path), "--host", host], {})
    system = LocalSystem(s, "redis://127.0.0.1:1/0", ServiceRuntime("t"))
    [gateway] = [c for c in system.children if c.args[0] == "gateway"]
    assert gateway.args[gateway.args.index("--websocket-upstream") + 1] == upstream
    assert "--websocket-url" not in gateway.args  # same origin: /api/config says null
    # Jobs name files of the sample directory, which the analysis runner reads too.
    [runner] = [c for c in system.children if c.args[0] == "analysis"]
    for child in (gateway, runner):
        assert child.args[child.args.index("--media-dir") + 1] == str(tmp_path)
    parse_settings(GatewaySettings, gateway.args[1:], SECRET_ENV)  # every flag is a real setting


# -- HTTP surface with Redis "down" ------------------------------------------------------------


class TestGatewayHttp(AsyncHTTPTestCase):
    def get_app(self) -> Any:
        self.registry = CollectorRegistry()
        self.metrics = GatewayMetrics(self.registry)
        self.pool = ThreadPoolExecutor(max_workers=2)
        return make_app(DownRedis(), gatekeeper=NO_AUTH, metrics=self.metrics, executor=self.pool)

    def tearDown(self) -> None:
        super().tearDown()
        self.pool.shutdown(wait=True)

    def json_fetch(self, path: str, method: str = "GET", body: bytes | None = None,
                   headers: dict[str, str] | None = None) -> tuple[int, dict[str, Any], Any]:
        if body is None and method == "POST":
            body = b"{}"
        resp = self.fetch(path, method=method, body=body, headers=headers, raise_error=False)
        assert resp.headers["Content-Type"].startswith("application/json"), path
        for name in SECURITY_HEADERS:
            assert name in resp.headers, (path, name)
        return resp.code, dict(resp.headers), json.loads(resp.body)

    def test_healthz_is_up_without_redis(self) -> None:
        code, _, body = self.json_fetch("/healthz")
        assert code == 200 and body == {"status": "ok"}

    def test_redis_down_gives_503_json(self) -> None:
        for path in ("/readyz", "/api/streams", "/api/status", "/api/streams/cam1",
                     "/api/streams/cam1/snapshot.jpg", "/api/streams/cam1/latest",
                     "/api/streams/cam1/results", "/api/streams/cam1/counts?step=60",
                     "/api/streams/cam1/mjpeg"):
            code, _, body = self.json_fetch(path)
            assert code == 503, path
            assert body == {"error": REDIS_DOWN_MESSAGE}
        job = "/api/analysis/j0123456789ab"
        for path in ("/api/analysis", job, f"{job}/results", f"{job}/frames/5.jpg",
                     f"{job}/frames/5/results"):
            code, _, body = self.json_fetch(path)
            assert (code, body) == (503, {"error": REDIS_DOWN_MESSAGE}), path
        assert self.json_fetch(job, "DELETE")[0] == 503
        code, _, body = self.json_fetch("/api/analysis", "POST", job_body(),
                                        {"Content-Type": "application/json; charset=utf-8"})
        assert (code, body) == (503, {"error": REDIS_DOWN_MESSAGE})

    def test_job_requests_are_checked_before_redis_is_asked(self) -> None:
        as_json = {"Content-Type": "application/json"}
        for body, headers, status, message in (
                (job_body(), {}, 415, "Content-Type: application/json"),
                (job_body(), {"Content-Type": "text/plain"}, 415, "application/json"),
                (job_body(name="x" * MAX_JOB_BODY), as_json, 413, "larger than 16384 bytes"),
                (b"{", as_json, 400, "not valid JSON"),
                (job_body(types=["x y"]), as_json, 400, "invalid inference type")):
            code, _, answer = self.json_fetch("/api/analysis", "POST", body, headers)
            assert (code, message in answer["error"]) == (status, True), (body[:40], answer)
        for path, message in (("/api/analysis?limit=0", "invalid limit"),
                              ("/api/analysis/nope", "invalid job id"),
                              ("/api/analysis/j0123456789ab/results?offset=x", "invalid offset"),
                              ("/api/analysis/j0123456789ab/frames/-1.jpg",
                               "invalid frame number")):
            code, _, answer = self.json_fetch(path)
            assert code == 400 and message in answer["error"], (path, answer)

    def test_parameters_are_checked_before_redis_is_asked(self) -> None:
        for path, name in (("/api/streams/cam1/results?limit=0", "limit"),
                           ("/api/streams/cam1/results?label=%00", "label"),
                           ("/api/streams/cam1/results?since=%FF", "since"),
                           ("/api/streams/cam1/counts?step=0", "step"),
                           ("/api/streams/cam1/mjpeg?fps=99", "fps")):
            code, _, body = self.json_fetch(path)
            assert code == 400 and name in body["error"], (path, body)

    def test_ws_is_404_without_an_upstream(self) -> None:
        code, _, body = self.json_fetch("/ws")
        assert code == 404 and "/ws" in body["error"]

    def test_bad_ids_give_400_with_message(self) -> None:
        for path in ("/api/streams/bad%20id", "/api/streams/" + "x" * 100,
                     "/api/streams/a%2Fb/latest", "/api/streams/%C3%A9/snapshot.jpg"):
            code, _, body = self.json_fetch(path)
            assert code == 400, path
            assert "invalid stream id" in body["error"]

    def test_unknown_paths_give_404_json(self) -> None:
        for path in ("/api/nope", "/api/streams/cam1/nope", "/nope", "/api/"):
            code, _, body = self.json_fetch(path)
            assert code == 404, path
            assert "no such resource" in body["error"]
        code, _, body = self.json_fetch("/static/missing.js")
        assert code == 404 and "error" in body

    def test_paths_no_resource_can_have_give_400_on_every_route(self) -> None:
        for path in ("/%00", "/api/nope%0A", "/static/%00", "/x%7F", "/x%C2%85"):
            code, _, body = self.json_fetch(path)
            assert code == 400 and "control characters" in body["error"], (path, body)

    def test_wrong_method_gives_405_json(self) -> None:
        code, _, body = self.json_fetch("/api/streams", method="POST")
        assert code == 405 and body["error"]
        code, _, _ = self.json_fetch("/api/streams/cam1", method="DELETE")
        assert code == 405

    def test_config(self) -> None:
        code, _, body = self.json_fetch("/api/config")
        assert code == 200 and body == {"websocket_url": None}

    def test_index_and_static_script_carry_security_headers(self) -> None:
        resp = self.fetch("/")
        assert resp.code == 200
        assert resp.headers["Content-Type"].startswith("text/html")
        html = resp.body.decode()
        assert '<script src="/static/app.js"' in html
        assert "<script>" not in html and "onclick" not in html  # nothing inline for CSP
        csp = resp.headers["Content-Security-Policy"]
        assert "unsafe-inline" not in csp
        assert resp.headers["X-Frame-Options"] == "DENY"
        assert resp.headers["X-Content-Type-Options"] == "nosniff"
        assert resp.headers["Referrer-Policy"] == "no-referrer"
        js = self.fetch("/static/app.js")
        assert js.code == 200 and b"/api/streams" in js.body
        assert js.headers["Content-Security-Policy"] == csp

    def test_requests_are_counted_by_handler_and_code(self) -> None:
        self.fetch("/healthz")
        self.fetch("/api/nope")
        self.fetch("/readyz")
        def count(handler: str, code: str) -> float | None:
            return self.registry.get_sample_value(HTTP_REQUESTS,
                                                  {"handler": handler, "code": code})
        assert count("HealthHandler", "200") == 1
        assert count("NotFoundHandler", "404") == 1
        assert count("ReadyHandler", "503") == 1
