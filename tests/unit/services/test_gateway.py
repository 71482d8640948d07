"""Gateway without Redis: snapshot/latest merging, CSP, and the HTTP surface via Tornado's test
client, with a fake client that behaves like Redis being down."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import redis
from prometheus_client import CollectorRegistry
from tornado.testing import AsyncHTTPTestCase

from elastic_inference.core.broker import OutputEntry
from elastic_inference.core.metrics import GatewayMetrics
from elastic_inference.core.result import Detection, Result
from elastic_inference.services.gateway import (
    REDIS_DOWN_MESSAGE,
    content_security_policy,
    latest_by_type,
    make_app,
    pick_snapshot,
)


def entry(infer_type: str, seq: int, jpeg: bytes = b"jpeg", label: str = "person",
          eid: str = "1-0") -> OutputEntry:
    result = Result(stream="cam1", type=infer_type, seq=seq, ts_capture=1.0, ts_done=1.1,
                    model="m", device="CPU", w=64, h=48,
                    detections=(Detection(label, 0.9, (0.1, 0.1, 0.5, 0.5)),))
    return OutputEntry("cam1", eid, jpeg, result.encode())


# -- pure helpers ------------------------------------------------------------------------------


def test_snapshot_merges_all_types_of_the_newest_seq() -> None:
    entries = [  # newest first, as OutputBroker.latest returns them
        entry("face", 10, b"f10", "face"),
        entry("people", 11, b"p11", "person"),
        entry("car", 11, b"c11", "car"),
        entry("people", 11, b"p11-dup", "ghost"),  # an older duplicate of people/11
        entry("people", 9, b"p9", "old"),
    ]
    snap = pick_snapshot(entries)
    assert snap is not None
    assert snap.seq == 11
    assert snap.jpeg == b"p11"
    assert snap.types == ("car", "people")
    assert sorted(d.label for d in snap.detections) == ["car", "person"]


def test_snapshot_none_without_entries_and_bare_frame_without_valid_results() -> None:
    assert pick_snapshot([]) is None
    snap = pick_snapshot([OutputEntry("cam1", "1-0", b"raw", b"not json")])
    assert snap is not None and snap.jpeg == b"raw" and snap.detections == ()


def test_latest_by_type_keeps_newest_per_type() -> None:
    entries = [entry("people", 12), entry("face", 11), entry("people", 10),
               OutputEntry("cam1", "1-0", b"", b'{"v": 2}')]
    latest = latest_by_type(entries)
    assert list(latest) == ["face", "people"]
    assert latest["people"]["seq"] == 12 and latest["face"]["seq"] == 11


def test_csp_forbids_inline_and_eval_and_allows_websocket_origin() -> None:
    csp = content_security_policy("wss://ws.example.com:8443/ws")
    assert "default-src 'self'" in csp
    assert "img-src 'self' data: blob:" in csp
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert "connect-src 'self' wss://ws.example.com:8443" in csp
    assert "connect-src 'self';" in content_security_policy("")


# -- HTTP surface with Redis "down" ------------------------------------------------------------


class DownRedis:
    """Every Redis call fails as if the server were unreachable."""

    def __getattr__(self, name: str) -> Any:
        def fail(*_args: Any, **_kwargs: Any) -> Any:
            raise redis.ConnectionError("Connection refused (fake)")
        return fail


SECURITY_HEADERS = ("Content-Security-Policy", "X-Content-Type-Options", "X-Frame-Options",
                    "Referrer-Policy")


class TestGatewayHttp(AsyncHTTPTestCase):
    def get_app(self) -> Any:
        self.metrics = GatewayMetrics(CollectorRegistry())
        self.pool = ThreadPoolExecutor(max_workers=2)
        return make_app(DownRedis(), metrics=self.metrics, executor=self.pool)  # type: ignore[arg-type]

    def tearDown(self) -> None:
        super().tearDown()
        self.pool.shutdown(wait=True)

    def json_fetch(self, path: str, method: str = "GET") -> tuple[int, dict[str, Any], Any]:
        body = b"{}" if method == "POST" else None
        resp = self.fetch(path, method=method, body=body, raise_error=False)
        assert resp.headers["Content-Type"].startswith("application/json"), path
        for name in SECURITY_HEADERS:
            assert name in resp.headers, (path, name)
        return resp.code, dict(resp.headers), json.loads(resp.body)

    def test_healthz_is_up_without_redis(self) -> None:
        code, _, body = self.json_fetch("/healthz")
        assert code == 200 and body == {"status": "ok"}

    def test_redis_down_gives_503_json(self) -> None:
        for path in ("/readyz", "/api/streams", "/api/status", "/api/streams/cam1",
                     "/api/streams/cam1/snapshot.jpg", "/api/streams/cam1/latest"):
            code, _, body = self.json_fetch(path)
            assert code == 503, path
            assert body == {"error": REDIS_DOWN_MESSAGE}

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
        counter = self.metrics.requests
        assert counter.labels("HealthHandler", "200")._value.get() == 1
        assert counter.labels("NotFoundHandler", "404")._value.get() == 1
        assert counter.labels("ReadyHandler", "503")._value.get() == 1
