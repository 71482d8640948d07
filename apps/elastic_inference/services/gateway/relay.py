"""The same-origin ``/ws`` relay to the websocket service."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from typing import Any

import tornado.web
import tornado.websocket
from tornado.httpclient import HTTPClientError, HTTPRequest
from tornado.iostream import StreamClosedError

from ...core import clients
from ...core.hosts import ORIGIN_REFUSED
from ...core.live import MAX_FRAME_MESSAGE_BYTES, MAX_INCOMING_BYTES, WS_PATH
from ...core.runtime import LIVE_SOCKET_BUFFER, cap_socket_buffers
from ...core.sessions import SESSION_COOKIE
from .base import LOGGED_HOST_CHARS, VIEW, SecureHandler

log = logging.getLogger(__name__)

WS_CONNECT_TIMEOUT_S = 5.0
WS_PING_S = 20.0
#: Close codes a server may send on (RFC 6455 reserves 1005, 1006 and 1015 for local use).
_RELAYABLE_CLOSE = frozenset({1000, 1001, 1008, 1011, 1012, 1013, 1014})



class WebsocketProxyHandler(SecureHandler, tornado.websocket.WebSocketHandler):
    """``/ws`` on the gateway's origin: relays the websocket service, both ways, unchanged.

    Each direction awaits its write before reading the next message, so nothing queues here:
    a slow browser holds back the upstream connection, and the websocket service's per-client
    mailbox (newest frame per stream and type) decides what is skipped.
    """

    access = VIEW

    upstream: tornado.websocket.WebSocketClientConnection | None
    relay: asyncio.Task[None] | None

    def initialize(self) -> None:
        self.upstream = None
        self.relay = None
        self.client = ""

    @property
    def max_message_size(self) -> int:
        return MAX_INCOMING_BYTES

    async def prepare(self) -> None:
        """A foreign page is refused before its credentials are looked at, as the websocket
        service does (a browser sends the cookie whichever page opens the socket)."""
        origin = self.request.headers.get("Origin")
        if origin is not None and not self.check_origin(origin):
            raise tornado.web.HTTPError(403, "%s", ORIGIN_REFUSED)
        await super().prepare()

    async def get(self, *args: Any, **kwargs: Any) -> None:
        if self.request.headers.get("Upgrade", "").lower() != "websocket":
            raise tornado.web.HTTPError(400, "%s is a websocket endpoint (Upgrade: websocket)",
                                        WS_PATH)
        await super().get(*args, **kwargs)

    def check_origin(self, origin: str) -> bool:
        """A browser's page must come from an allowed origin (EI_ALLOWED_ORIGINS) or the
        gateway's own (its Host has passed the allow-list); a client without ``Origin`` is no
        browser and is let through (Tornado asks only if it is set)."""
        if self.ctx.hosts.allows_origin(origin, self.request.headers.get("Host")):
            return True
        log.warning("ws proxy: refusing Origin %r from %s (EI_ALLOWED_ORIGINS)",
                    origin[:LOGGED_HOST_CHARS], self.ctx.client_ip(self.request))
        return False

    async def open(self, *args: str, **kwargs: str) -> None:
        """Connect upstream (the browser's messages wait until this returns)."""
        ctx = self.ctx
        ip = ctx.client_ip(self.request)
        refused = ctx.proxy_caps.admit(clients.client_key(ip))
        if refused is not None:
            log.warning("ws proxy: refusing %s: %s", ip, refused.message)
            # 1008: this client holds enough already; 1013: the gateway is full, try later.
            self.close(1008 if refused.per_client else 1013, refused.message)
            return
        self.client = clients.client_key(ip)
        ctx.proxies.add(self)
        try:
            # The websocket service caps per client too: it must see the browser's address.
            # It checks credentials itself too: it gets the ones the browser sent here.
            upstream = await tornado.websocket.websocket_connect(
                HTTPRequest(ctx.websocket_upstream, headers=self.upstream_headers(ip),
                            connect_timeout=WS_CONNECT_TIMEOUT_S),
                max_message_size=MAX_FRAME_MESSAGE_BYTES)
        except (OSError, HTTPClientError, StreamClosedError,
                tornado.websocket.WebSocketError, asyncio.TimeoutError) as exc:
            log.warning("ws proxy: websocket service %s unreachable: %s",
                        ctx.websocket_upstream, exc)
            self.close(1013, "websocket service unavailable")
            return
        if self not in ctx.proxies:  # the browser left (or shutdown began) meanwhile
            upstream.close(1000)
            return
        self.upstream = upstream
        # Small buffers on both hops, so a slow browser holds back the websocket service (whose
        # mailbox then skips to the newest frame) instead of megabytes of stale frames.
        up = upstream.protocol.stream if upstream.protocol is not None else None
        down = self.ws_connection.stream if self.ws_connection is not None else None
        if up is not None:
            cap_socket_buffers(up.socket, recv=LIVE_SOCKET_BUFFER)
        if down is not None:
            cap_socket_buffers(down.socket, send=LIVE_SOCKET_BUFFER)
        self.relay = asyncio.create_task(self._relay_down(upstream))

    def upstream_headers(self, ip: str) -> dict[str, str]:
        """The browser's address, and the credentials it sent (only those: no other cookie
        of the browser leaves the gateway)."""
        headers = {"X-Forwarded-For": ip}
        authorization = self.request.headers.get("Authorization")
        if authorization is not None:
            headers["Authorization"] = authorization
        cookie = self.get_cookie(SESSION_COOKIE)
        if cookie is not None:
            headers["Cookie"] = f"{SESSION_COOKIE}={cookie}"
        return headers

    async def _relay_down(self, upstream: tornado.websocket.WebSocketClientConnection) -> None:
        """Websocket service -> browser until either side closes."""
        def write(message: str | bytes) -> Awaitable[None]:
            return self.write_message(message, binary=isinstance(message, bytes))

        send = clients.bounded_send(
            write, self.ctx.limits.write_timeout,
            lambda: self.close(1008, "write timeout: the client does not read"), self.client)
        while (message := await upstream.read_message()) is not None:
            try:
                await send(message)
            except tornado.websocket.WebSocketClosedError:
                return  # the browser left, or was dropped by the write timeout
        code = upstream.close_code
        self.close(code if code in _RELAYABLE_CLOSE else 1013,
                   upstream.close_reason or "websocket service closed the connection")

    async def on_message(self, message: str | bytes) -> None:
        """Browser -> websocket service (subscriptions), one at a time."""
        if self.upstream is None:
            return
        try:
            await self.upstream.write_message(message, binary=isinstance(message, bytes))
        except tornado.websocket.WebSocketClosedError:
            self.close(1013, "websocket service closed the connection")

    def on_close(self) -> None:
        if self.client:
            self.ctx.proxy_caps.release(self.client)
            self.client = ""
        self.ctx.proxies.discard(self)
        if self.upstream is not None:
            self.upstream.close(1000)
        if self.relay is not None:
            self.relay.cancel()
