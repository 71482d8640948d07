"""Handlers that take a JSON body: streamed in and capped, so an oversized request is refused
without being held in memory, and sent as ``application/json`` only."""

from __future__ import annotations

from typing import ClassVar

import tornado.web

from .base import BaseHandler


@tornado.web.stream_request_body
class JsonBodyHandler(BaseHandler):
    """Keeps at most :attr:`max_body` bytes of the body; :meth:`json_body` hands them over."""

    max_body: ClassVar[int] = 16 * 1024

    body: bytearray
    too_large: bool

    async def prepare(self) -> None:
        self.body = bytearray()
        self.too_large = False
        await self.authorize()
        length = self.request.headers.get("Content-Length", "")
        if length.isdigit() and int(length) > self.max_body:
            raise tornado.web.HTTPError(413, "the body is larger than %d bytes", self.max_body)

    def data_received(self, chunk: bytes) -> None:
        if self.too_large or len(self.body) + len(chunk) > self.max_body:
            self.too_large = True  # a chunked body: keep reading, stop keeping
            self.body.clear()
        else:
            self.body += chunk

    def json_body(self, what: str) -> bytes:
        """The body, once checked for size and media type (``what`` names it in the 415)."""
        if self.too_large:
            raise tornado.web.HTTPError(413, "the body is larger than %d bytes", self.max_body)
        media_type = self.request.headers.get("Content-Type", "").split(";")[0].strip().lower()
        if media_type != "application/json":
            # Also keeps other sites' pages out: a cross-origin JSON request needs a CORS
            # preflight, which the gateway never grants.
            raise tornado.web.HTTPError(415, "send %s as JSON with Content-Type: "
                                             "application/json", what)
        return bytes(self.body)
