"""The websocket server: accepts clients, follows the live output in Redis, feeds the hub."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http import HTTPStatus

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.frames import CloseCode
from websockets.http11 import Request, Response

from ...core import clients
from ...core.access import REALM, Credentials, Gatekeeper, session_cookie
from ...core.broker import OutputBroker, OutputEntry, TracksEntry
from ...core.errors import SubscribeError
from ...core.hosts import ORIGIN_REFUSED, HostPolicy
from ...core.live import (
    MAX_INCOMING_BYTES,
    WS_PATH,
    encode_tracks,
    error_text,
    parse_subscribe,
)
from ...core.metrics import WebsocketMetrics
from ...core.redisconn import REDIS_DOWN_ERRORS, REDIS_DOWN_MESSAGE, Backoff, RedisClient
from ...core.redisconn import error_text as redis_error
from ...core.registry import StreamRegistry
from ...core.runtime import (
    LIVE_SOCKET_BUFFER,
    cap_socket_buffers,
)
from .hub import FRAME, RESULT, TRACKS, Hub, Mailbox
from .joiner import FrameJoiner, Outgoing

log = logging.getLogger(__name__)


@dataclass
class ReaderState:
    """Cursors of the one reader (live output, and live tracks per stream); exposed for tests
    and logs."""

    cursors: dict[str, str]
    track_cursors: dict[str, str] = field(default_factory=dict)
    last_refresh: float = 0.0


class WebsocketService:
    """Websocket server plus the single Redis reader feeding its hub."""

    def __init__(self, client: RedisClient, metrics: WebsocketMetrics, *,
                 gatekeeper: Gatekeeper, max_clients: int = 200,
                 stop: threading.Event | None = None,
                 refresh_s: float = 1.0, block_ms: int = 500, read_count: int = 8,
                 close_timeout: float = 2.0,
                 limits: clients.ConnectionLimits = clients.DEFAULT_LIMITS,
                 hosts: HostPolicy | None = None) -> None:
        self.client = client
        #: Checks every handshake's credentials, as the gateway does (core.access).
        self.gatekeeper = gatekeeper
        self.broker = OutputBroker(client)
        self.registry = StreamRegistry(client)
        self.metrics = metrics
        self.max_clients = max_clients
        self.stop = stop if stop is not None else threading.Event()
        self.refresh_s = refresh_s
        self.block_ms = block_ms
        self.read_count = read_count
        self.close_timeout = close_timeout
        self.limits = limits
        #: Allowed origins of browser pages (EI_ALLOWED_ORIGINS; default from the hosts).
        self.hosts = hosts if hosts is not None else HostPolicy.build(())
        self.caps = clients.ConnectionCaps("websocket clients", max_clients,
                                           limits.ws_per_client)
        self.hub = Hub(metrics)
        self.state = ReaderState(cursors={})
        #: Which results carry their frame's JPEG (the first of each frame).
        self.joiner = FrameJoiner()
        self.backoff = Backoff("websocket")
        self.server: Server | None = None
        #: Connections whose handler runs (whatever their state), for aborting at shutdown.
        self._open: set[ServerConnection] = set()

    # -- connections --------------------------------------------------------------------------

    async def _process_request(self, connection: ServerConnection,
                               request: Request) -> Response | None:
        """Only ``/ws`` (query string allowed) upgrades, anything else is a plain 404; a
        browser's handshake (it sends ``Origin``) from a page of another origin is a 403; then
        the same credentials as the gateway's (token, session cookie): the Ingress can route
        clients here directly, so this server checks them itself (401, or 503 while Redis is
        unreachable). The gateway's relay forwards the browser's cookie and Authorization."""
        if request.path.split("?", 1)[0] != WS_PATH:
            return connection.respond(HTTPStatus.NOT_FOUND,
                                      f"not found: the websocket endpoint is {WS_PATH}\n")
        peer = connection.remote_address[0] if connection.remote_address else "?"
        origins = request.headers.get_all("Origin")
        if origins and (len(origins) > 1 or not self.hosts.allows_origin(origins[0])):
            log.warning("refusing Origin %r from %s", origins[0][:100], peer)
            return connection.respond(HTTPStatus.FORBIDDEN, ORIGIN_REFUSED + "\n")
        creds = Credentials(request.headers.get("Authorization"),
                            session_cookie(request.headers.get("Cookie")), WS_PATH)
        try:
            access = await asyncio.to_thread(self.gatekeeper.identify, creds)
        except REDIS_DOWN_ERRORS as exc:
            log.warning("cannot check credentials of %s: Redis unavailable (%s)", peer,
                        redis_error(exc))
            return connection.respond(HTTPStatus.SERVICE_UNAVAILABLE,
                                      REDIS_DOWN_MESSAGE + "\n")
        if access.principal is None:
            response = connection.respond(HTTPStatus.UNAUTHORIZED, access.reason + "\n")
            response.headers["WWW-Authenticate"] = REALM
            return response
        return None

    async def _handle(self, conn: ServerConnection) -> None:
        # The gateway's /ws relay names the browser in X-Forwarded-For (EI_TRUSTED_PROXIES).
        ip = clients.client_from(conn.remote_address[0], conn.request.headers.get_all
                                 if conn.request else lambda _: [], self.limits.trusted)
        client = clients.client_key(ip)
        if (refused := self.caps.admit(client)) is not None:
            log.warning("refusing client %s: %s", ip, refused.message)
            # 1008: this client holds enough already; 1013: the server is full, try later.
            await conn.close(CloseCode.POLICY_VIOLATION if refused.per_client
                             else CloseCode.TRY_AGAIN_LATER, refused.message)
            return
        cap_socket_buffers(conn.transport.get_extra_info("socket"), send=LIVE_SOCKET_BUFFER)
        # A client that reads nothing is aborted (a close frame could not reach it either).
        send = clients.bounded_send(conn.send, self.limits.write_timeout, conn.transport.abort,
                                    ip)
        box = Mailbox(send, self.metrics, name=str(conn.remote_address))
        self.hub.add(box)
        self._open.add(conn)
        sender = asyncio.create_task(self._send_loop(box), name=f"ws-send-{conn.id}")
        log.debug("client %s connected (%d now)", box.name, len(self.hub.clients))
        try:
            async for message in conn:
                if isinstance(message, bytes):
                    box.post_text(error_text("binary messages are not accepted; send JSON text"))
                    continue
                try:
                    box.subscribe(parse_subscribe(message))
                except SubscribeError as exc:
                    box.post_text(error_text(str(exc)))
        except ConnectionClosed:
            pass
        finally:
            self._open.discard(conn)
            self.caps.release(client)
            self.hub.remove(box)
            sender.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sender
            log.debug("client %s gone (%d left; sent %d, skipped %d)", box.name,
                      len(self.hub.clients), box.sent, box.skipped)

    @staticmethod
    async def _send_loop(box: Mailbox) -> None:
        try:
            await box.run()
        except ConnectionClosed:
            pass

    # -- the reader -----------------------------------------------------------------------------

    def _refresh(self, with_cursors: bool) -> list[str]:
        """Live stream ids, and cursors for new ones at their newest entry (sync, in a thread).

        Resolving ``$`` to a concrete id once means entries that arrive between two reads are
        not lost, which a ``$`` cursor repeated on every XREAD would allow.
        """
        ids = self.registry.ids()
        cursors, track_cursors = self.state.cursors, self.state.track_cursors
        for held in (cursors, track_cursors):
            for gone in [s for s in held if s not in ids]:
                del held[gone]
        self.joiner.retain(ids)
        if with_cursors:
            for stream in ids:
                if stream not in cursors:
                    newest = self.broker.latest(stream, 1)
                    cursors[stream] = newest[0].entry_id if newest else "0-0"
                if stream not in track_cursors:
                    track_cursors[stream] = self.broker.latest_tracks_id(stream) or "0-0"
        return ids

    def _read(self, cursors: dict[str, str], track_cursors: dict[str, str]
              ) -> list[Outgoing | TracksEntry]:
        """The new entries, each output entry encoded as a frame (the first result of a new
        frame, with its JPEG: all such JPEGs fetched in one more round trip) or as a text
        result (sync, in a thread)."""
        entries = self.broker.read_live(cursors, track_cursors, block_ms=self.block_ms,
                                        count=self.read_count)
        joined = iter(self.joiner.join([e for e in entries if isinstance(e, OutputEntry)],
                                       self.broker.attach_frames))
        return [next(joined) if isinstance(e, OutputEntry) else e for e in entries]

    def _dispatch(self, entry: Outgoing | TracksEntry) -> None:
        """Move the entry's cursor on and offer it to the hub; a malformed tracks entry is
        skipped and counted (its producer is another service)."""
        if isinstance(entry, TracksEntry):
            if entry.stream in self.state.track_cursors:
                self.state.track_cursors[entry.stream] = entry.entry_id
            try:
                infer_type, text = encode_tracks(entry.tracks)
            except ValueError as exc:
                self.metrics.tracks_invalid.inc()
                log.debug("skipping tracks entry %s of %s: %s", entry.entry_id, entry.stream,
                          exc)
                return
            self.hub.dispatch(entry.stream, text, infer_type, TRACKS)
            return
        if entry.stream in self.state.cursors:
            self.state.cursors[entry.stream] = entry.entry_id
        if entry.message is not None:
            self.hub.dispatch(entry.stream, entry.message, entry.infer_type,
                              FRAME if entry.is_frame else RESULT)

    async def _reader(self) -> None:
        """Follow every live stream's output and dispatch each entry to the hub."""
        while not self.stop.is_set():
            try:
                if time.monotonic() - self.state.last_refresh >= self.refresh_s:
                    ids = await asyncio.to_thread(self._refresh, bool(self.hub.clients))
                    self.state.last_refresh = time.monotonic()
                    self._succeeded()
                    if self.hub.set_streams(ids):
                        log.info("live streams: %s", ", ".join(ids) or "(none)")
                if not self.hub.clients or not self.state.cursors:
                    await self._idle()
                    continue
                entries = await asyncio.to_thread(self._read, dict(self.state.cursors),
                                                  dict(self.state.track_cursors))
                self._succeeded()
            except REDIS_DOWN_ERRORS as exc:
                await asyncio.to_thread(self.backoff.failed, exc, self.stop)
                continue
            for entry in entries:
                self._dispatch(entry)

    async def _idle(self) -> None:
        """Nobody to read for, or nothing to read: wait for a client or the next refresh.

        Without clients the cursors are dropped (no JPEGs are pulled from Redis for nobody);
        the first client to arrive triggers an immediate refresh that starts them afresh.
        """
        if not self.hub.clients:
            self.state.cursors.clear()
            self.state.track_cursors.clear()
            self.joiner.clear()
        had_clients = bool(self.hub.clients)
        self.hub.changed.clear()
        remaining = self.refresh_s - (time.monotonic() - self.state.last_refresh)
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self.hub.changed.wait(), max(0.0, remaining))
        if self.hub.clients and not had_clients:
            self.state.last_refresh = 0.0

    def _succeeded(self) -> None:
        if self.backoff.succeeded():
            self.metrics.reconnects.inc()
            # After an outage, start again at the newest entries instead of a backlog.
            self.state.cursors.clear()
            self.state.track_cursors.clear()
            self.joiner.clear()
            self.state.last_refresh = 0.0

    # -- lifecycle ----------------------------------------------------------------------------

    async def start(self, host: str, port: int) -> int:
        """Listen on ``host:port`` (0 = any free port); returns the bound port."""
        self.server = await serve(
            self._handle, host, port,
            process_request=self._process_request,
            compression=None,  # JPEG does not deflate; compressing only burns CPU
            max_size=MAX_INCOMING_BYTES,
            open_timeout=self.limits.header_timeout,
            close_timeout=self.close_timeout,
            server_header=None,
        )
        bound = int(next(iter(self.server.sockets)).getsockname()[1])
        log.info("websocket server on ws://%s:%d%s (max %d clients)", host, bound, WS_PATH,
                 self.max_clients)
        return bound

    async def run(self, host: str, port: int,
                  started: Callable[[int], None] | None = None) -> None:
        """Serve until ``stop`` is set, then close every client with 1001 (going away)."""
        bound = await self.start(host, port)
        if started is not None:
            started(bound)
        reader = asyncio.create_task(self._reader(), name="ws-reader")
        try:
            while not self.stop.is_set() and not reader.done():
                # The stop event is a threading.Event set by a signal handler; a short poll is
                # the simplest bridge into the loop and costs nothing measurable.
                await asyncio.sleep(0.1)
            if reader.done():
                reader.result()  # re-raise an unexpected reader failure
        finally:
            self.stop.set()
            await self.close()
            with contextlib.suppress(asyncio.CancelledError):
                await reader

    async def close(self) -> None:
        """Close every client with 1001, and abort those still there after the close timeout:
        a client that reads nothing cannot take its close frame (it waits behind the unsent
        data), and shutting down must not wait for the write timeout to drop it."""
        if self.server is None:
            return
        server, self.server = self.server, None
        server.close(close_connections=True, code=CloseCode.GOING_AWAY,
                     reason="server shutting down")
        try:
            await asyncio.wait_for(asyncio.shield(server.wait_closed()), self.close_timeout + 1)
        except TimeoutError:
            stuck = list(self._open)
            log.info("aborting %d client(s) that did not close in time", len(stuck))
            for conn in stuck:
                conn.transport.abort()
            await server.wait_closed()
