"""``ei websocket``: fans the live output of every stream out to browsers.

One reader per process follows ``ei:out:{stream}`` of all live streams (core is sync redis, so
each blocking ``XREAD`` runs in a thread) and offers every entry, encoded once, to each
subscribed client's mailbox. A mailbox keeps only the latest pending entry per stream (and
inference type) and has its own sender task, so a slow browser loses intermediate frames
(counted as skipped) instead of delaying the reader or any other client. The protocol is
described in doc/api.md; the message format is :mod:`..core.live`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from http import HTTPStatus

import redis
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.frames import CloseCode
from websockets.http11 import Request, Response

from ..core import clients
from ..core.broker import OutputBroker, OutputEntry
from ..core.errors import SubscribeError
from ..core.live import (
    MAX_INCOMING_BYTES,
    WS_PATH,
    encode_frame,
    error_text,
    parse_subscribe,
    streams_text,
)
from ..core.metrics import WebsocketMetrics
from ..core.redisconn import REDIS_DOWN_ERRORS, Backoff
from ..core.registry import StreamRegistry
from ..core.runtime import (
    LIVE_SOCKET_BUFFER,
    cap_socket_buffers,
    running,
)
from ..core.settings import WebsocketSettings, parse_settings

log = logging.getLogger(__name__)

#: Control messages (errors) queued per client before the oldest are dropped.
MAX_PENDING_TEXT = 8

Send = Callable[[str | bytes], Awaitable[None]]


# ---------------------------------------------------------------------------------------------
# Wire format


def encode_entry(entry: OutputEntry) -> tuple[str, bytes] | None:
    """``(inference type, message)`` for one live-buffer entry; ``None`` when its result is
    not a JSON object (logged at debug; workers validate, so this means a foreign writer)."""
    try:
        result = json.loads(entry.result)
    except (ValueError, UnicodeDecodeError):
        log.debug("skipping entry %s of %s: result is not JSON", entry.entry_id, entry.stream)
        return None
    if not isinstance(result, dict):
        log.debug("skipping entry %s of %s: result is not an object", entry.entry_id,
                  entry.stream)
        return None
    infer_type = result.get("type")
    return (infer_type if isinstance(infer_type, str) else "",
            encode_frame(entry.stream, entry.entry_id, result, entry.jpeg))


# ---------------------------------------------------------------------------------------------
# Per-client mailbox and the hub


class Mailbox:
    """What one client has yet to receive: the latest entry per (stream, type), plus control
    texts. Keyed by type too because each type publishes its own result for the same frame;
    keyed by stream alone, one type's boxes would routinely replace another's.

    ``offer`` never awaits, so the fan-out loop is never held up by this client; the sender
    task (``run``) drains the mailbox at the client's own pace.
    """

    def __init__(self, send: Send, metrics: WebsocketMetrics | None = None,
                 name: str = "client") -> None:
        self.send = send
        self.metrics = metrics
        self.name = name
        self.subscription: frozenset[str] | None = None
        self.sent = 0
        self.skipped = 0
        self._frames: dict[tuple[str, str], bytes] = {}
        self._streams: str | None = None
        self._texts: deque[str] = deque(maxlen=MAX_PENDING_TEXT)
        self._wake = asyncio.Event()

    def wants(self, stream: str) -> bool:
        return self.subscription is None or stream in self.subscription

    def subscribe(self, subscription: frozenset[str] | None) -> None:
        """Change the subscription and forget pending entries the client no longer wants."""
        self.subscription = subscription
        for key in [k for k in self._frames if not self.wants(k[0])]:
            del self._frames[key]

    def offer(self, stream: str, message: bytes, infer_type: str = "") -> None:
        """Queue ``message``; an unsent older one of the same stream and type is replaced
        and counted as skipped."""
        key = (stream, infer_type)
        if key in self._frames:
            self.skipped += 1
            if self.metrics is not None:
                self.metrics.skipped.inc()
        self._frames[key] = message
        self._wake.set()

    def offer_streams(self, text: str) -> None:
        """Queue a stream-list message; only the newest unsent one is kept."""
        self._streams = text
        self._wake.set()

    def post_text(self, text: str) -> None:
        """Queue a control text (an error reply); the oldest is dropped beyond a few."""
        self._texts.append(text)
        self._wake.set()

    @property
    def pending(self) -> int:
        return len(self._frames) + len(self._texts) + (self._streams is not None)

    async def run(self) -> None:
        """Send whatever is pending, oldest kind first, until the connection closes."""
        while True:
            await self._wake.wait()
            self._wake.clear()
            if self._streams is not None:
                text, self._streams = self._streams, None
                await self.send(text)
            while self._texts:
                await self.send(self._texts.popleft())
            frames, self._frames = self._frames, {}
            for message in frames.values():
                await self.send(message)
                self.sent += 1
                if self.metrics is not None:
                    self.metrics.sent.inc()


class Hub:
    """The set of connected clients; dispatches entries and stream lists to their mailboxes."""

    def __init__(self, metrics: WebsocketMetrics | None = None) -> None:
        self.metrics = metrics
        self.clients: set[Mailbox] = set()
        self.streams: tuple[str, ...] = ()
        self.changed = asyncio.Event()

    def add(self, box: Mailbox) -> None:
        self.clients.add(box)
        box.offer_streams(streams_text(self.streams))
        self._count()

    def remove(self, box: Mailbox) -> None:
        self.clients.discard(box)
        self._count()

    def _count(self) -> None:
        if self.metrics is not None:
            self.metrics.clients.set(len(self.clients))
        self.changed.set()

    def dispatch(self, stream: str, message: bytes, infer_type: str = "") -> int:
        """Offer ``message`` to every client subscribed to ``stream``; returns how many."""
        n = 0
        for box in self.clients:
            if box.wants(stream):
                box.offer(stream, message, infer_type)
                n += 1
        return n

    def set_streams(self, streams: Iterable[str]) -> bool:
        """Record the live stream list and tell every client when it changed."""
        new = tuple(sorted(streams))
        if new == self.streams:
            return False
        self.streams = new
        text = streams_text(new)
        for box in self.clients:
            box.offer_streams(text)
        return True


# ---------------------------------------------------------------------------------------------
# The service


@dataclass
class ReaderState:
    """Cursors of the one reader; exposed for tests and logs."""

    cursors: dict[str, str]
    last_refresh: float = 0.0


class WebsocketService:
    """Websocket server plus the single Redis reader feeding its hub."""

    def __init__(self, client: redis.Redis, metrics: WebsocketMetrics, *,
                 max_clients: int = 200, stop: threading.Event | None = None,
                 refresh_s: float = 1.0, block_ms: int = 500, read_count: int = 8,
                 close_timeout: float = 2.0,
                 limits: clients.ConnectionLimits = clients.DEFAULT_LIMITS) -> None:
        self.client = client
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
        self.caps = clients.ConnectionCaps("websocket clients", max_clients,
                                           limits.ws_per_client)
        self.hub = Hub(metrics)
        self.state = ReaderState(cursors={})
        self.backoff = Backoff("websocket")
        self.server: Server | None = None

    # -- connections --------------------------------------------------------------------------

    @staticmethod
    def _process_request(connection: ServerConnection, request: Request) -> Response | None:
        """Only ``/ws`` (query string allowed) upgrades; anything else is a plain 404."""
        if request.path.split("?", 1)[0] != WS_PATH:
            return connection.respond(HTTPStatus.NOT_FOUND,
                                      f"not found: the websocket endpoint is {WS_PATH}\n")
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
        cursors = self.state.cursors
        for gone in [s for s in cursors if s not in ids]:
            del cursors[gone]
        if with_cursors:
            for stream in ids:
                if stream not in cursors:
                    newest = self.broker.latest(stream, 1)
                    cursors[stream] = newest[0].entry_id if newest else "0-0"
        return ids

    def _read(self, cursors: dict[str, str]) -> list[OutputEntry]:
        return self.broker.read(cursors, block_ms=self.block_ms, count=self.read_count)

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
                entries = await asyncio.to_thread(self._read, dict(self.state.cursors))
                self._succeeded()
            except REDIS_DOWN_ERRORS as exc:
                await asyncio.to_thread(self.backoff.failed, exc, self.stop)
                continue
            for entry in entries:
                if entry.stream in self.state.cursors:
                    self.state.cursors[entry.stream] = entry.entry_id
                encoded = encode_entry(entry)
                if encoded is not None:
                    self.hub.dispatch(entry.stream, encoded[1], encoded[0])

    async def _idle(self) -> None:
        """Nobody to read for, or nothing to read: wait for a client or the next refresh.

        Without clients the cursors are dropped (no JPEGs are pulled from Redis for nobody);
        the first client to arrive triggers an immediate refresh that starts them afresh.
        """
        if not self.hub.clients:
            self.state.cursors.clear()
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
        if self.server is not None:
            self.server.close(close_connections=True, code=CloseCode.GOING_AWAY,
                              reason="server shutting down")
            await self.server.wait_closed()
            self.server = None


def main(argv: list[str]) -> int:
    """``ei websocket``: parse settings, serve until SIGTERM/SIGINT, exit 0."""
    settings = parse_settings(WebsocketSettings, argv, prog="ei websocket")
    with running("websocket", settings) as (runtime, client):
        service = WebsocketService(client, WebsocketMetrics(runtime.registry),
                                   max_clients=settings.max_clients, stop=runtime.stop,
                                   limits=settings.connection_limits())
        asyncio.run(service.run(settings.host, settings.port,
                                started=lambda _port: runtime.ready.set()))
    log.info("websocket: stopped")
    return runtime.exit_code
