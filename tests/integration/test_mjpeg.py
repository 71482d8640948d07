"""The gateway's live endpoints against real Redis: MJPEG viewers (in-process gateway) and the
same-origin ``/ws`` proxy (real ``ei websocket`` and ``ei gateway`` processes).

Frames are real JPEGs of samples/vtest.avi published with OutputBroker, for two inference types
per frame as workers do.
"""

from __future__ import annotations

import asyncio
import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from http.client import HTTPResponse
from typing import Any

import numpy as np
import pytest
import redis
import websockets
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from elastic_inference.core.auth import Role
from elastic_inference.core.live import decode_frame
from elastic_inference.core.metrics import MJPEG_FRAMES, REDIS_RECONNECTS
from elastic_inference.core.registry import StreamRegistry
from elastic_inference.core.snapshot import FOLLOW_READ as MJPEG_READ
from elastic_inference.services.gateway import MJPEG_BOUNDARY, MjpegFollower
from tests.credentials import SECRET_ENV, bearer
from tests.gateway_app import GatewayThread
from tests.jpegs import decode
from tests.live_feed import FACE_BOX, PEOPLE_BOX, STREAM, Publisher, metric, read_part, ready
from tests.outputs import publish
from tests.processes import Service, wait_for
from tests.redis_server import RedisServer, free_port

pytestmark = pytest.mark.integration

@pytest.fixture
def publisher(redis_client: redis.Redis) -> Iterator[Publisher]:
    with Publisher(redis_client) as pub:
        wait_for(lambda: pub.published >= 2, 10, "the first frames to be published")
        yield pub


@pytest.fixture
def gateway(redis_url: str) -> Iterator[GatewayThread]:
    gw = GatewayThread(redis_url, max_mjpeg_clients=2)
    yield gw
    gw.stop()


# -- MJPEG ----------------------------------------------------------------------------------------


def open_mjpeg(gw: GatewayThread, query: str = "") -> HTTPResponse:
    req = urllib.request.Request(f"{gw.url}/api/streams/{STREAM}/mjpeg{query}",
                                 headers=gw.auth)
    resp: HTTPResponse = urllib.request.urlopen(req, timeout=10)
    assert resp.status == 200
    assert resp.headers["Content-Type"] == (
        f"multipart/x-mixed-replace; boundary={MJPEG_BOUNDARY}")
    assert resp.headers["Cache-Control"] == "no-store"
    assert "unsafe-inline" not in resp.headers["Content-Security-Policy"]
    return resp


def boxes_drawn(pub: Publisher, jpeg: bytes) -> bool:
    """Whether ``jpeg`` is one of the published frames with both types' boxes on it."""
    img = decode(jpeg)
    assert img.shape[:2] == (pub.h, pub.w)
    shown = img.astype(int)
    raw = min(pub.raw, key=lambda r: float(np.abs(r - shown).mean()))  # the frame it shows
    diff = np.abs(shown - raw).sum(axis=2)

    def changed(x: float, y: float) -> bool:
        px, py = round(x * (pub.w - 1)), round(y * (pub.h - 1))
        return bool(diff[py - 1:py + 2, px - 1:px + 2].max() > 60)

    untouched = float(diff[round(pub.h * 0.6):, round(pub.w * 0.55):].mean()) < 12
    return changed(PEOPLE_BOX[0], 0.5) and changed(FACE_BOX[2], 0.35) and untouched


def test_follower_reads_each_entry_once_and_skips_backlogs(redis_client: redis.Redis) -> None:
    pub = Publisher(redis_client)  # not started: frames published one by one here
    broker = pub.broker
    follower = MjpegFollower(broker, STREAM)
    assert follower.next_frame(100) is None  # no output yet: it waited, found nothing
    jpeg = pub.jpegs[0]
    publish(broker, [(pub.result("people", 1, "person", PEOPLE_BOX), jpeg)])
    frame = follower.next_frame(100)
    assert frame is not None and frame[0] == 1 and boxes_drawn(pub, frame[1]) is False
    assert follower.next_frame(100) is None  # nothing new
    publish(broker, [(pub.result("face", 1, "face", FACE_BOX), jpeg)])
    frame = follower.next_frame(100)  # the same frame, now with both types' boxes
    assert frame is not None and frame[0] == 1 and boxes_drawn(pub, frame[1])
    publish(broker, [(pub.result("people", 2, "person", PEOPLE_BOX), pub.jpegs[1])])
    assert follower.next_frame(100) is not None and len(follower.window) == 3
    backlog = MJPEG_READ + 5
    for seq in range(3, 3 + backlog):
        publish(broker, [(pub.result("people", seq, "person", PEOPLE_BOX), jpeg)])
    frame = follower.next_frame(100)
    assert frame is not None and frame[0] == 2 + backlog  # the newest, not the next one
    assert follower.next_frame(100) is None


def test_mjpeg_streams_new_annotated_frames(gateway: GatewayThread,
                                            publisher: Publisher) -> None:
    resp = open_mjpeg(gateway, "?fps=30")
    with resp:
        parts = [read_part(resp) for _ in range(14)]
    jpegs = [p for p in parts if p is not None]
    assert len(jpegs) == 14
    assert len(set(jpegs)) >= 12  # new frames only (a seq may be resent once its 2nd type lands)
    assert sum(boxes_drawn(publisher, j) for j in jpegs) >= 10
    wait_for(lambda: gateway.ctx.mjpeg_clients == 0, 5, "the viewer to be let go")
    assert (gateway.registry.get_sample_value(MJPEG_FRAMES) or 0) >= 14


def test_mjpeg_frame_rate_is_capped(gateway: GatewayThread, publisher: Publisher) -> None:
    with open_mjpeg(gateway, "?fps=4") as resp:
        assert read_part(resp) is not None  # the current frame at once
        started = time.monotonic()
        for _ in range(6):
            assert read_part(resp) is not None
        elapsed = time.monotonic() - started
    assert 6 / 4 - 0.2 <= elapsed < 6, elapsed  # publishing runs at 25 fps


def test_mjpeg_viewers_are_bounded_and_released(gateway: GatewayThread,
                                                publisher: Publisher) -> None:
    first, second = open_mjpeg(gateway), open_mjpeg(gateway)
    try:
        assert read_part(first) and read_part(second)
        code, body = gateway.get_json(f"/api/streams/{STREAM}/mjpeg")
        assert code == 503 and "too many MJPEG viewers (2)" in body["error"]
        first.close()
        wait_for(lambda: gateway.ctx.mjpeg_clients == 1, 5, "the closed viewer to be noticed")
        with open_mjpeg(gateway) as third:
            assert read_part(third)
    finally:
        first.close()
        second.close()
    wait_for(lambda: gateway.ctx.mjpeg_clients == 0, 5, "every viewer to be let go")


def test_mjpeg_errors(gateway: GatewayThread, publisher: Publisher) -> None:
    code, body = gateway.get_json("/api/streams/nope/mjpeg")
    assert (code, body) == (404, {"error": "unknown stream 'nope'"})
    for fps in ("0", "31", "-1", "fast", "nan", "inf"):
        code, body = gateway.get_json(f"/api/streams/{STREAM}/mjpeg?fps={fps}")
        assert code == 400 and body["error"].startswith("invalid fps"), (fps, body)
    assert gateway.ctx.mjpeg_clients == 0


def test_mjpeg_waits_for_a_live_stream_without_output(gateway: GatewayThread,
                                                      redis_client: redis.Redis) -> None:
    StreamRegistry(redis_client).beat(STREAM, {"types": ["people"]})
    with open_mjpeg(gateway) as resp:  # headers come at once; the first part with the frame
        wait_for(lambda: gateway.ctx.mjpeg_clients == 1, 10, "the viewer to be waiting")
        with Publisher(redis_client):
            assert read_part(resp) is not None


def test_gateway_shutdown_ends_mjpeg_streams(redis_url: str, publisher: Publisher) -> None:
    gw = GatewayThread(redis_url)
    resp = open_mjpeg(gw)
    with resp:
        assert read_part(resp) is not None
        started = time.monotonic()
        gw.stop()
        assert not gw.thread.is_alive()
        while read_part(resp) is not None:  # frames already on the way, then the end
            pass
        assert time.monotonic() - started < 8
    assert gw.ctx.mjpeg_clients == 0


def test_mjpeg_pauses_through_a_redis_outage() -> None:
    server = RedisServer().start()
    gw = GatewayThread(server.url)
    try:
        with Publisher(redis.Redis.from_url(server.url)):
            resp = open_mjpeg(gw)
            assert read_part(resp) is not None
        server.restart(down_for=1.5)  # everything in it is lost, as with a new Redis pod
        with resp, Publisher(redis.Redis.from_url(server.url)):
            assert read_part(resp) is not None  # the same response goes on
        reconnects = gw.registry.get_sample_value(REDIS_RECONNECTS, {"component": "gateway"})
        assert (reconnects or 0) >= 1
    finally:
        gw.stop()
        server.stop()


# -- the /ws proxy --------------------------------------------------------------------------------


def start_services(redis_url: str, *gateway_flags: str) -> tuple[Service, Service, int, int]:
    """``ei websocket`` and an ``ei gateway`` proxying /ws to it, both ready."""
    ws_port, gw_port = free_port(), free_port()
    ws = Service(["websocket", "--redis-url", redis_url, "--host", "127.0.0.1", "--port",
                  str(ws_port)], SECRET_ENV)
    gw = Service(["gateway", "--redis-url", redis_url, "--host", "127.0.0.1", "--port",
                  str(gw_port), "--websocket-upstream", f"ws://127.0.0.1:{ws_port}/ws",
                  *gateway_flags], SECRET_ENV)
    for svc in (ws, gw):
        wait_for(lambda: ready(svc) or not svc.alive(), 20,  # noqa: B023
                 f"ei {svc.args[0]} to become ready")
        assert svc.alive(), svc.output()
    return ws, gw, ws_port, gw_port


#: A viewer's token for the processes' clients (made per test by ``viewer``).
AUTH: dict[str, str] = {}


@pytest.fixture
def viewer(redis_client: redis.Redis) -> None:
    AUTH.clear()
    AUTH.update(bearer(redis_client, Role.VIEWER))


async def connect(url: str) -> ClientConnection:
    return await websockets.connect(url, open_timeout=10, max_size=16 * 2**20,
                                    additional_headers=AUTH)


async def text_until(ws: ClientConnection, key: str) -> dict[str, Any]:
    """The next text message that has ``key`` (binary frames in between are skipped)."""
    while True:
        message = await asyncio.wait_for(ws.recv(), 10)
        if isinstance(message, str) and key in (data := json.loads(message)):
            return dict(data)


async def frames(ws: ClientConnection, seconds: float) -> dict[str, bytes | str]:
    """Live messages received for ``seconds`` by output entry id: binary frames (the first
    type's result with the JPEG) and text results (the other type's)."""
    out: dict[str, bytes | str] = {}
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        try:
            message = await asyncio.wait_for(ws.recv(), left)
        except asyncio.TimeoutError:
            break
        if isinstance(message, bytes):
            header, jpeg = decode_frame(message)
            assert header["stream"] == STREAM and jpeg[:2] == b"\xff\xd8"
            out[header["id"]] = message
        elif "result" in (data := json.loads(message)):
            assert data["stream"] == STREAM
            out[data["id"]] = message
    return out


async def close_code(ws: ClientConnection, timeout: float = 10) -> int | None:
    """Read until the server closes; its close code."""
    try:
        while True:
            await asyncio.wait_for(ws.recv(), timeout)
    except ConnectionClosed as exc:
        return exc.rcvd.code if exc.rcvd is not None else None


@pytest.mark.usefixtures("viewer")
def test_ws_proxy_relays_the_websocket_service(redis_url: str, publisher: Publisher) -> None:
    ws, gw, ws_port, gw_port = start_services(redis_url, "--max-proxy-clients", "2")

    async def scenario() -> None:
        direct = await connect(f"ws://127.0.0.1:{ws_port}/ws")
        proxied = await connect(f"ws://127.0.0.1:{gw_port}/ws")
        # Text both ways: the stream list comes down, a bad request goes up, its error down.
        for client in (direct, proxied):
            listed = await text_until(client, "streams")
            while STREAM not in listed["streams"]:
                listed = await text_until(client, "streams")
        await proxied.send(json.dumps({"subscribe": "cam1"}))
        assert "list of stream ids" in (await text_until(proxied, "error"))["error"]
        for client in (direct, proxied):
            await client.send(json.dumps({"subscribe": [STREAM]}))
        got_direct, got_proxied = await asyncio.gather(frames(direct, 3), frames(proxied, 3))
        common = set(got_direct) & set(got_proxied)
        assert len(common) >= 10, (len(got_direct), len(got_proxied))
        assert all(got_direct[i] == got_proxied[i] for i in common)  # relayed unchanged
        # Both kinds: a frame's JPEG with its first result, the other type's result as text.
        assert {type(got_proxied[i]) for i in common} == {bytes, str}

        # Bounded: a third proxied client is turned away with 1013 (try again later).
        second = await connect(f"ws://127.0.0.1:{gw_port}/ws")
        third = await connect(f"ws://127.0.0.1:{gw_port}/ws")
        assert await close_code(third) == 1013
        await second.close()

        # The browser leaves: the gateway's upstream connection goes too.
        await proxied.close()
        await asyncio.to_thread(wait_for, lambda: metric(ws, "ei_ws_clients") == 1, 10,
                                "the proxied upstream connection to close")

        # The websocket service leaves (SIGTERM, 1001): the browser side is closed alike.
        again = await connect(f"ws://127.0.0.1:{gw_port}/ws")
        await text_until(again, "streams")
        await asyncio.to_thread(ws.send)
        assert await close_code(again) == 1001
        await direct.close()

    try:
        asyncio.run(scenario())
    finally:
        assert ws.stop() == 0, ws.output()
        assert gw.stop() == 0, gw.output()
    assert "Traceback" not in gw.output() and "ERROR" not in gw.output(), gw.output()


@pytest.mark.usefixtures("viewer")
def test_gateway_sigterm_closes_proxied_websockets_and_mjpeg(redis_url: str,
                                                             publisher: Publisher) -> None:
    ws, gw, _, gw_port = start_services(redis_url)

    async def scenario() -> None:
        proxied = await connect(f"ws://127.0.0.1:{gw_port}/ws")
        await text_until(proxied, "streams")
        mjpeg = await asyncio.to_thread(
            urllib.request.urlopen, urllib.request.Request(
                f"http://127.0.0.1:{gw_port}/api/streams/{STREAM}/mjpeg", headers=AUTH),
            None, 10)
        assert await asyncio.to_thread(read_part, mjpeg) is not None
        await asyncio.to_thread(gw.send)
        assert await close_code(proxied) == 1001
        while await asyncio.to_thread(read_part, mjpeg) is not None:
            pass
        mjpeg.close()

    try:
        started = time.monotonic()
        asyncio.run(scenario())
        assert gw.stop(timeout=10) == 0, gw.output()
        assert time.monotonic() - started < 15
    finally:
        gw.stop()
        assert ws.stop() == 0, ws.output()
    assert "Traceback" not in gw.output() and "ERROR" not in gw.output(), gw.output()


@pytest.mark.usefixtures("viewer")
def test_unreachable_upstream_closes_with_1013(redis_url: str) -> None:
    port, dead = free_port(), free_port()
    gw = Service(["gateway", "--redis-url", redis_url, "--host", "127.0.0.1", "--port",
                  str(port), "--websocket-upstream", f"ws://127.0.0.1:{dead}/ws"], SECRET_ENV)
    try:
        wait_for(lambda: ready(gw) or not gw.alive(), 20, "ei gateway to become ready")

        async def scenario() -> int | None:
            client = await connect(f"ws://127.0.0.1:{port}/ws")
            return await close_code(client)

        assert asyncio.run(scenario()) == 1013
        with pytest.raises(urllib.error.HTTPError) as err:  # a plain GET is no upgrade
            urllib.request.urlopen(urllib.request.Request(f"http://127.0.0.1:{port}/ws",
                                                          headers=AUTH), timeout=5)
        with err.value as resp:
            assert resp.code == 400 and "websocket" in json.loads(resp.read())["error"]
    finally:
        assert gw.stop() == 0, gw.output()
