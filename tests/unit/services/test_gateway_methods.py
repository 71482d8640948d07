"""A method a route lacks: 405 JSON with the route's methods in ``Allow`` (RFC 9110)."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import redis
from tornado.testing import AsyncHTTPTestCase

from elastic_inference.services.gateway import make_app
from elastic_inference.services.gateway.base import implemented_methods
from elastic_inference.services.gateway.streams import HealthHandler
from tests.credentials import NO_AUTH


def test_implemented_methods_are_those_a_handler_defines() -> None:
    assert implemented_methods(HealthHandler) == ["GET"]


class TestWrongMethod(AsyncHTTPTestCase):
    def get_app(self) -> Any:
        self.pool = ThreadPoolExecutor(max_workers=1)
        # Nothing here reaches Redis: a 405 is answered before any handler method runs.
        return make_app(redis.Redis(port=1), gatekeeper=NO_AUTH, executor=self.pool)

    def tearDown(self) -> None:
        super().tearDown()
        self.pool.shutdown(wait=True)

    def test_405_names_the_allowed_methods(self) -> None:
        for path, method, allowed in (("/api/streams", "POST", "GET"),
                                      ("/healthz", "DELETE", "GET"),
                                      ("/api/analysis", "DELETE", "GET, POST"),
                                      ("/api/analysis/j0123456789ab", "POST", "GET, DELETE")):
            resp = self.fetch(path, method=method, raise_error=False,
                              body=b"{}" if method == "POST" else None)
            assert resp.code == 405, (path, method)
            assert resp.headers.get("Allow") == allowed, (path, method, resp.headers)
            assert json.loads(resp.body)["error"], (path, method)
            assert resp.headers["Content-Type"].startswith("application/json")

    def test_an_unknown_method_is_405_with_allow(self) -> None:
        resp = self.fetch("/api/status", method="TRACE", raise_error=False,
                          allow_nonstandard_methods=True)
        assert resp.code == 405 and resp.headers.get("Allow") == "GET"
