"""The gateway serving the dashboard's build (``spa/dist``) without Redis: the index
revalidated, hashed assets immutable, missing files 404, and the plain page when the dashboard
is not built."""

from __future__ import annotations

import json
import logging
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from tornado.testing import AsyncHTTPTestCase

from elastic_inference.services.gateway import IMMUTABLE, make_app
from tests.credentials import NO_AUTH
from tests.fakes import SECURITY_HEADERS, DownRedis


def build_dashboard(root: Path) -> Path:
    """A stand-in for ``vite build`` output: index.html, a hashed bundle, a public file."""
    (root / "assets").mkdir(parents=True)
    (root / "index.html").write_text('<!doctype html><script type="module" '
                                     'src="./assets/index-4f2a.js"></script><div id="app">')
    (root / "assets" / "index-4f2a.js").write_text("console.log('dashboard');\n")
    (root / "favicon.ico").write_bytes(b"\x00\x00\x01\x00")
    return root


class TestDashboard(AsyncHTTPTestCase):
    def get_app(self) -> Any:
        import tempfile

        self.spa = build_dashboard(Path(tempfile.mkdtemp(prefix="ei-spa-")) / "dist")
        self.pool = ThreadPoolExecutor(max_workers=1)
        return make_app(DownRedis(), gatekeeper=NO_AUTH, executor=self.pool, spa_dir=self.spa)

    def tearDown(self) -> None:
        super().tearDown()
        self.pool.shutdown(wait=True)

    def test_index_is_revalidated_and_carries_security_headers(self) -> None:
        resp = self.fetch("/")
        assert resp.code == 200 and b'id="app"' in resp.body
        assert resp.headers["Content-Type"].startswith("text/html")
        assert resp.headers["Cache-Control"] == "no-cache"
        for name in SECURITY_HEADERS:
            assert name in resp.headers
        assert "unsafe" not in resp.headers["Content-Security-Policy"]
        again = self.fetch("/", headers={"If-None-Match": resp.headers["Etag"]})
        assert again.code == 304

    def test_hashed_assets_are_immutable_and_other_files_served(self) -> None:
        js = self.fetch("/assets/index-4f2a.js")
        assert js.code == 200 and b"dashboard" in js.body
        assert js.headers["Cache-Control"] == IMMUTABLE
        assert "javascript" in js.headers["Content-Type"]
        assert js.headers["X-Content-Type-Options"] == "nosniff"
        ico = self.fetch("/favicon.ico")
        assert ico.code == 200 and ico.headers["Cache-Control"] == "no-cache"

    def test_missing_files_and_api_paths_are_404_json(self) -> None:
        for path, handler_hint in (("/assets/index-0000.js", "/assets/index-0000.js"),
                                   ("/nope", "/nope"), ("/api/nope", "/api/nope"),
                                   ("/api", "/api"), ("/ws", "/ws")):
            resp = self.fetch(path)
            assert resp.code == 404, path
            assert json.loads(resp.body) == {"error": f"no such resource: {handler_hint}"}
        for path in ("/assets", "/assets/", "/%2e%2e/%2e%2e/etc/passwd"):
            resp = self.fetch(path)  # a directory, or out of the build
            assert resp.code == 404 and b"no such resource" in resp.body, path

    def test_api_and_plain_page_files_still_answer(self) -> None:
        assert self.fetch("/healthz").code == 200
        assert self.fetch("/api/config").code == 200
        assert self.fetch("/static/app.js").code == 200


def test_plain_page_when_the_dashboard_is_not_built(tmp_path: Path,
                                                    caplog: pytest.LogCaptureFixture) -> None:
    pool = ThreadPoolExecutor(max_workers=1)
    with caplog.at_level(logging.WARNING, "elastic_inference.services.gateway"):
        app = make_app(DownRedis(), gatekeeper=NO_AUTH, executor=pool, spa_dir=tmp_path / "dist")
    pool.shutdown()
    [record] = [r for r in caplog.records if "not built" in r.getMessage()]
    assert "make spa" in record.getMessage() and str(tmp_path / "dist") in record.getMessage()
    built = build_dashboard(tmp_path / "built")
    caplog.clear()
    with caplog.at_level(logging.WARNING, "elastic_inference.services.gateway"):
        make_app(DownRedis(), gatekeeper=NO_AUTH, executor=pool, spa_dir=built)
    assert not caplog.records
    assert app.ctx.websocket_upstream == ""
