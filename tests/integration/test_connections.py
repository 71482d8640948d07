"""One client cannot lock out the others: per-client caps, header and write timeouts.

Real redis-server, a real stream of vtest frames (people and face results, as two workers
publish them), real ``ei websocket`` and ``ei gateway`` processes for the acceptance scenario,
in-process services where a test needs short timeouts. Linux routes all of 127/8 to lo, so
"another client" is a socket bound to 127.0.0.2.
"""

from __future__ import annotations

import asyncio
import base64
import http.client
import json
import os
import selectors
import socket
import threading
import time

import pytest
import redis
import websockets
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from elastic_inference.core.auth import Role
from elastic_inference.core.clients import ConnectionLimits
from elastic_inference.core.live import decode_frame
from tests.credentials import SECRET_ENV, bearer
from tests.gateway_app import GatewayThread
from tests.live_feed import STREAM, Publisher, metric, read_part, ready
from tests.processes import Service, wait_for
from tests.redis_server import free_port
from tests.websocket_service import ServiceThread

pytestmark = pytest.mark.integration

GREEDY, OTHER = "127.0.0.1", "127.0.0.2"
MJPEG_PATH = f"/api/streams/{STREAM}/mjpeg"
#: A viewer's token, sent by every client here (made per test by ``viewer``).
AUTH: dict[str, str] = {}


@pytest.fixture(autouse=True)
def viewer(redis_client: redis.Redis) -> None:
    AUTH.clear()
    AUTH.update(bearer(redis_client, Role.VIEWER))


def auth_lines() -> str:
    return "".join(f"{name}: {value}\r\n" for name, value in AUTH.items())


def raw_connect(port: int, source: str = GREEDY, rcvbuf: int = 0) -> socket.socket:
    """A TCP connection from ``source``; a small ``rcvbuf`` makes a non-reader fill up fast."""
    sock = socket.socket()
    if rcvbuf:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.bind((source, 0))
    sock.settimeout(10)
    sock.connect(("127.0.0.1", port))
    return sock


def status_of(sock: socket.socket) -> int:
    """The status code of the response the socket is receiving (only its first line read)."""
    head = b""
    while len(head) < 12:
        chunk = sock.recv(12 - len(head))
        assert chunk, f"closed after {head!r}"
        head += chunk
    return int(head.split()[1])


def idle_mjpeg(port: int, source: str = GREEDY, rcvbuf: int = 0) -> tuple[socket.socket, int]:
    """An MJPEG request whose response is never read beyond its status."""
    sock = raw_connect(port, source, rcvbuf)
    sock.sendall(f"GET {MJPEG_PATH} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{auth_lines()}"
                 "\r\n".encode())
    return sock, status_of(sock)


def idle_websocket(port: int, source: str = GREEDY) -> socket.socket:
    """A websocket that completes its handshake and then never reads a byte."""
    sock = raw_connect(port, source, rcvbuf=4096)
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall((f"GET /ws HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
                  f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n{auth_lines()}"
                  "Sec-WebSocket-Version: 13\r\n\r\n").encode())
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(1)  # byte by byte: nothing past the handshake is taken
        assert chunk, head
        head += chunk
    assert head.startswith(b"HTTP/1.1 101"), head
    return sock


def mjpeg_from(port: int, source: str) -> http.client.HTTPResponse:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10, source_address=(source, 0))
    conn.request("GET", MJPEG_PATH, headers=AUTH)
    return conn.getresponse()


async def ws_from(url: str, source: str) -> ClientConnection:
    return await websockets.connect(url, open_timeout=10, max_size=16 * 2**20,
                                    local_addr=(source, 0), additional_headers=AUTH)


async def first_frame(ws: ClientConnection, timeout: float) -> bytes:
    """The first binary frame (skipping stream lists); TimeoutError after ``timeout``."""
    async with asyncio.timeout(timeout):
        while True:
            message = await ws.recv()
            if isinstance(message, bytes):
                return message


async def close_of(ws: ClientConnection, timeout: float = 10) -> tuple[int | None, str]:
    try:
        async with asyncio.timeout(timeout):
            while True:
                await ws.recv()
    except ConnectionClosed as exc:
        return (exc.rcvd.code, exc.rcvd.reason) if exc.rcvd else (None, "")


def closed_by_peer(socks: list[socket.socket], timeout: float) -> int:
    """How many of ``socks`` the server closes (EOF) within ``timeout``; none is written to."""
    sel = selectors.DefaultSelector()
    for sock in socks:
        sock.setblocking(False)
        sel.register(sock, selectors.EVENT_READ, sock)
    closed = 0
    deadline = time.monotonic() + timeout
    while closed < len(socks) and (left := deadline - time.monotonic()) > 0:
        for key, _ in sel.select(left):
            sock = key.data
            try:
                data = sock.recv(65536)
            except ConnectionResetError:
                data = b""
            if not data:
                sel.unregister(sock)
                closed += 1
    sel.close()
    return closed


def partial_heads(port: int, n: int) -> list[socket.socket]:
    """``n`` connections that start a request head and never finish it."""
    socks = []
    for _ in range(n):
        sock = raw_connect(port)
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: t\r\n")  # no blank line: never complete
        socks.append(sock)
    return socks


def close_all(socks: list[socket.socket]) -> None:
    for sock in socks:
        sock.close()


# -- acceptance: real processes ---------------------------------------------------------------


def test_one_client_holding_everything_does_not_lock_out_another(
        redis_url: str, redis_client: redis.Redis) -> None:
    """20 idle MJPEG viewers and 200 idle /ws sockets from one client; a viewer from another
    client still gets frames within 2 s, and the greedy one was told why it was refused."""
    ws_port, gw_port = free_port(), free_port()
    # The websocket service believes the gateway's X-Forwarded-For (both on 127.0.0.1). The
    # caps alone must do it: no write timeout drops the idle sockets during the test.
    ws = Service(["websocket", "--redis-url", redis_url, "--host", "127.0.0.1", "--port",
                  str(ws_port), "--trusted-proxies", "127.0.0.1", "--write-timeout", "600"],
                 SECRET_ENV)
    gw = Service(["gateway", "--redis-url", redis_url, "--host", "0.0.0.0", "--port",
                  str(gw_port), "--websocket-upstream", f"ws://127.0.0.1:{ws_port}/ws",
                  "--write-timeout", "600"], SECRET_ENV)
    greedy_mjpeg: list[socket.socket] = []

    async def scenario() -> None:
        # 20 MJPEG viewers that never read a frame: 4 (the per-client cap) are served...
        statuses = []
        for _ in range(20):
            sock, status = await asyncio.to_thread(idle_mjpeg, gw_port)
            greedy_mjpeg.append(sock)
            statuses.append(status)
        assert statuses.count(200) == 4 and statuses.count(429) == 16, statuses
        # ... and the rest told why, in JSON.
        resp = await asyncio.to_thread(mjpeg_from, gw_port, GREEDY)
        assert resp.status == 429
        assert json.loads(resp.read())["error"] == (
            "too many MJPEG viewers from 127.0.0.1 (4); close one first")

        # 200 /ws sockets that never read: 20 proxied, 180 closed with 1008 and a reason.
        greedy_ws = [await ws_from(f"ws://127.0.0.1:{gw_port}/ws", GREEDY) for _ in range(200)]
        closes = await asyncio.gather(*(close_of(c, 15) for c in greedy_ws[20:]))
        assert set(closes) == {(1008, "too many websocket clients from 127.0.0.1 (20); close "
                                      "one first")}, set(closes)
        # The websocket service counts the proxied ones as the browser's (X-Forwarded-For):
        # the same client connecting directly is refused there too.
        await asyncio.to_thread(wait_for, lambda: metric(ws, "ei_ws_clients") == 20, 10,
                                "the 20 proxied connections upstream")
        direct = await ws_from(f"ws://127.0.0.1:{ws_port}/ws", GREEDY)
        assert (await close_of(direct))[0] == 1008

        # Another client: frames within 2 s, by MJPEG and by /ws.
        started = time.monotonic()
        viewer = await asyncio.to_thread(mjpeg_from, gw_port, OTHER)
        assert viewer.status == 200
        assert await asyncio.to_thread(read_part, viewer) is not None
        mjpeg_s = time.monotonic() - started
        viewer.close()
        started = time.monotonic()
        other = await ws_from(f"ws://127.0.0.1:{gw_port}/ws", OTHER)
        header, jpeg = decode_frame(await first_frame(other, 2.0))
        ws_s = time.monotonic() - started
        assert header["stream"] == STREAM and jpeg[:2] == b"\xff\xd8"
        assert mjpeg_s < 2.0 and ws_s < 2.0, (mjpeg_s, ws_s)
        await other.close()
        for client in greedy_ws[:20]:
            client.transport.abort()

    try:
        with Publisher(redis_client):
            for svc in (ws, gw):
                wait_for(lambda: ready(svc) or not svc.alive(), 20,  # noqa: B023
                         f"ei {svc.args[0]} to become ready")
                assert svc.alive(), svc.output()
            asyncio.run(scenario())
    finally:
        close_all(greedy_mjpeg)
        assert gw.stop() == 0, gw.output()
        assert ws.stop() == 0, ws.output()
    assert "Traceback" not in gw.output() + ws.output()


# -- header timeouts --------------------------------------------------------------------------


def test_partial_request_heads_are_closed_after_the_header_timeout(redis_url: str) -> None:
    gw = GatewayThread(redis_url, limits=ConnectionLimits(header_timeout=1.0))
    socks = partial_heads(gw.port, 1000)
    try:
        assert gw.get_json("/healthz") == (200, {"status": "ok"})  # others are served
        started = time.monotonic()
        assert closed_by_peer(socks, 30) == 1000
        assert time.monotonic() - started < 30
    finally:
        close_all(socks)
        gw.stop()


def test_unfinished_websocket_handshakes_are_closed(redis_url: str) -> None:
    svc = ServiceThread(redis_url, limits=ConnectionLimits(header_timeout=1.0))
    socks = partial_heads(svc.port, 200)
    try:  # well before the websockets library's own default (10 s)
        assert closed_by_peer(socks, 8) == 200
    finally:
        close_all(socks)
        svc.stop()


# -- write timeouts ---------------------------------------------------------------------------

WRITE_LIMITS = ConnectionLimits(write_timeout=1.5)


class Reader(threading.Thread):
    """Reads MJPEG parts all along: the well-behaved viewer next to a stuck one."""

    def __init__(self, resp: http.client.HTTPResponse) -> None:
        super().__init__(daemon=True)
        self.resp, self.parts, self.halt = resp, 0, threading.Event()

    def run(self) -> None:
        while not self.halt.is_set() and read_part(self.resp) is not None:
            self.parts += 1


def test_mjpeg_viewer_that_never_reads_is_dropped(redis_url: str,
                                                  redis_client: redis.Redis) -> None:
    gw = GatewayThread(redis_url, limits=WRITE_LIMITS)
    try:
        with Publisher(redis_client):
            stuck, status = idle_mjpeg(gw.port, rcvbuf=4096)
            assert status == 200
            good = Reader(mjpeg_from(gw.port, OTHER))
            good.start()
            assert gw.ctx.mjpeg_clients == 2
            wait_for(lambda: gw.ctx.mjpeg_clients == 1, 20, "the stuck viewer to be dropped",
                     interval=0.05)
            before = good.parts
            wait_for(lambda: good.parts >= before + 3, 10, "the other viewer's next frames")
            assert good.is_alive()
            good.halt.set()
            good.join(5)
            good.resp.close()
            stuck.close()
            wait_for(lambda: gw.ctx.mjpeg_clients == 0, 5, "every viewer to be let go")
    finally:
        gw.stop()


def test_websocket_client_that_never_reads_is_dropped(redis_url: str,
                                                      redis_client: redis.Redis) -> None:
    svc = ServiceThread(redis_url, limits=WRITE_LIMITS)

    async def good_client() -> int:
        good = await ws_from(svc.url, OTHER)
        await first_frame(good, 10)
        stuck = await asyncio.to_thread(idle_websocket, svc.port)
        await asyncio.to_thread(wait_for, lambda: len(svc.service.hub.clients) == 2, 10,
                                "both clients to be registered")
        # The good client reads all along; the stuck one is dropped meanwhile.
        received = 0
        deadline = time.monotonic() + 25
        while len(svc.service.hub.clients) > 1 and time.monotonic() < deadline:
            await first_frame(good, 5)
            received += 1
        assert len(svc.service.hub.clients) == 1, "the stuck client was not dropped"
        assert len(svc.service.caps) == 1
        await first_frame(good, 5)
        stuck.close()
        await good.close()
        return received

    try:
        with Publisher(redis_client):
            assert asyncio.run(good_client()) >= 3
    finally:
        svc.stop()


def test_ws_proxy_client_that_never_reads_is_dropped(redis_url: str,
                                                     redis_client: redis.Redis) -> None:
    upstream = ServiceThread(redis_url)
    gw = GatewayThread(redis_url, websocket_upstream=upstream.url, limits=WRITE_LIMITS)

    async def scenario() -> None:
        good = await ws_from(f"ws://127.0.0.1:{gw.port}/ws", OTHER)
        await first_frame(good, 10)
        stuck = await asyncio.to_thread(idle_websocket, gw.port)
        await asyncio.to_thread(wait_for, lambda: len(gw.ctx.proxies) == 2, 10,
                                "both clients to be proxied")
        deadline = time.monotonic() + 25  # the write timeout, then Tornado's 5 s close wait
        while len(gw.ctx.proxies) > 1 and time.monotonic() < deadline:
            await first_frame(good, 5)
        assert len(gw.ctx.proxies) == 1 and len(gw.ctx.proxy_caps) == 1
        await asyncio.to_thread(wait_for, lambda: len(upstream.service.hub.clients) == 1, 10,
                                "its upstream connection to close")
        await first_frame(good, 5)
        stuck.close()
        # Not close(): with a backlog in its receive queue the client would wait its close
        # timeout (10 s) for the reply queued behind the frames.
        good.transport.abort()

    try:
        with Publisher(redis_client):
            asyncio.run(scenario())
    finally:
        gw.stop()
        upstream.stop()
