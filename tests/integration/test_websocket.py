"""Websocket fan-out against a real redis-server and real websocket clients.

The service runs in-process (its own asyncio loop in a thread) except for the SIGTERM test,
which runs ``ei websocket`` as a subprocess.
"""

from __future__ import annotations

import json
import signal
import time
import urllib.request
from typing import Any

import cv2
import numpy as np
import pytest
import redis
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import ClientConnection, connect

from elastic_inference.core.auth import Role
from elastic_inference.core.live import decode_frame
from elastic_inference.core.metrics import (
    REDIS_RECONNECTS,
    WS_CLIENTS,
    WS_SENT,
    WS_SKIPPED,
)
from tests.credentials import SECRET_ENV, bearer
from tests.processes import Service, wait_for
from tests.redis_server import RedisServer, free_port
from tests.websocket_service import Publisher, ServiceThread, make_jpeg

pytestmark = pytest.mark.integration


def recv_frames(ws: ClientConnection, want: set[str], timeout: float = 10.0
                ) -> tuple[dict[str, tuple[dict[str, Any], bytes]], list[dict[str, Any]]]:
    """Receive until a binary frame of every stream in ``want`` arrived; returns the last of
    each and the text messages seen on the way."""
    frames: dict[str, tuple[dict[str, Any], bytes]] = {}
    texts: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    while not want <= frames.keys():
        msg = ws.recv(timeout=max(0.01, deadline - time.monotonic()))
        if isinstance(msg, str):
            texts.append(json.loads(msg))
        else:
            header, jpeg = decode_frame(msg)
            frames[header["stream"]] = (header, jpeg)
    return frames, texts


def test_every_stream_reaches_the_client(service: ServiceThread, redis_url: str) -> None:
    jpeg = make_jpeg()
    pub = Publisher(redis_url, ["cam1", "cam2"], jpeg)
    pub.start()
    try:
        with service.connect() as ws:
            frames, texts = recv_frames(ws, {"cam1", "cam2"})
    finally:
        pub.stop()
    assert {"streams": ["cam1", "cam2"]} in texts
    for stream, (header, body) in frames.items():
        assert body == jpeg  # passed through untouched
        img = cv2.imdecode(np.frombuffer(body, np.uint8), cv2.IMREAD_COLOR)
        assert img is not None and img.shape == (64, 96, 3)
        assert header["stream"] == stream and "-" in header["id"]
        result = header["result"]
        assert result["stream"] == stream and result["v"] == 1
        assert result["detections"][0]["label"] == "person"
    assert (service.registry.get_sample_value(WS_SENT) or 0) >= 2
    assert service.registry.get_sample_value(WS_CLIENTS) in (0, 1)


def test_each_types_result_of_a_frame_arrives(service: ServiceThread, redis_url: str) -> None:
    pub = Publisher(redis_url, ["cam1"], make_jpeg(), types=("people", "face"))
    pub.start()
    seen: dict[str, set[int]] = {"people": set(), "face": set()}
    try:
        with service.connect() as ws:
            deadline = time.monotonic() + 10
            while not seen["people"] & seen["face"]:  # both types of one same frame
                msg = ws.recv(timeout=max(0.01, deadline - time.monotonic()))
                # One type's result comes with the frame, the other's as a text message.
                data = decode_frame(msg)[0] if isinstance(msg, bytes) else json.loads(msg)
                if "result" in data:
                    seen[data["result"]["type"]].add(data["result"]["seq"])
    finally:
        pub.stop()


def test_subscribe_filters_and_bad_messages_get_errors(service: ServiceThread,
                                                       redis_url: str) -> None:
    pub = Publisher(redis_url, ["cam1", "cam2"], make_jpeg())
    pub.start()
    try:
        with service.connect() as ws:
            ws.send("{nope")
            ws.send(json.dumps({"subscribe": ["bad id"]}))
            ws.send(b"\x00binary")
            errors: list[str] = []
            while len(errors) < 3:
                msg = ws.recv(timeout=5)
                if isinstance(msg, str) and "error" in json.loads(msg):
                    errors.append(json.loads(msg)["error"])
            assert "not valid JSON" in errors[0]
            assert "invalid stream id" in errors[1]
            assert "binary" in errors[2]
            ws.send(json.dumps({"subscribe": ["cam2"]}))
            # A marker: the server reads messages in order and its error reply is queued only
            # after the subscribe took effect; a frame sent before that comes before the reply.
            ws.send("{marker")
            while not (isinstance(msg := ws.recv(timeout=5), str) and "error" in msg):
                pass
            seen = set()
            deadline = time.monotonic() + 1.0
            while time.monotonic() < deadline:
                msg = ws.recv(timeout=5)
                if isinstance(msg, bytes):
                    seen.add(decode_frame(msg)[0]["stream"])
            assert seen == {"cam2"}  # still connected, and filtered
    finally:
        pub.stop()


def test_non_reading_client_does_not_stop_another(service: ServiceThread,
                                                   redis_url: str) -> None:
    big = make_jpeg(640, 480, noise=True, quality=95)  # a few hundred KB: fills buffers fast
    assert len(big) > 200_000
    n = 80
    # The stalled client reads nothing; max_queue=1 makes its library stop reading the socket
    # at once, so the server's writes to it back up for real.
    with service.connect(max_queue=1, close_timeout=1), service.connect() as fast:
        recv_frames(fast, set(), timeout=1)
        wait_for(lambda: service.registry.get_sample_value(WS_CLIENTS) == 2, 10,
                 "the service to count both clients")
        pub = Publisher(redis_url, ["cam1"], big, interval=0.02, limit=n)
        pub.start()
        got = 0
        deadline = time.monotonic() + 20
        try:
            while True:
                msg = fast.recv(timeout=max(0.01, deadline - time.monotonic()))
                if isinstance(msg, bytes):
                    got += 1
                    if decode_frame(msg)[0]["result"]["seq"] == n - 1:  # the last one published
                        break
        finally:
            pub.stop()
        assert got >= n * 3 // 4, got
        # The stalled client's skips, not ours.
        assert (service.registry.get_sample_value(WS_SKIPPED) or 0) > 0
        # The stalled one is still connected.
        assert service.registry.get_sample_value(WS_CLIENTS) == 2


def test_other_paths_get_404(service: ServiceThread) -> None:
    with pytest.raises(InvalidStatus) as info:
        connect(f"ws://127.0.0.1:{service.port}/other")
    assert info.value.response.status_code == 404


def test_max_clients_closes_with_1013(redis_url: str) -> None:
    svc = ServiceThread(redis_url, max_clients=1)
    try:
        with svc.connect() as first:
            first.recv(timeout=5)  # streams text: first is registered
            with svc.connect() as second:
                with pytest.raises(ConnectionClosed) as info:
                    while True:
                        second.recv(timeout=5)
                assert info.value.rcvd is not None and info.value.rcvd.code == 1013
            first.ping().wait(5)  # the first client is unaffected
    finally:
        svc.stop()


def test_redis_restart_keeps_clients_and_resumes() -> None:
    server = RedisServer().start()
    svc = ServiceThread(server.url)
    pub = Publisher(server.url, ["cam1"], make_jpeg())
    try:
        pub.start()
        with svc.connect() as ws:
            recv_frames(ws, {"cam1"})
            server.stop()
            time.sleep(1.5)
            ws.ping().wait(5)  # still connected while Redis is down
            server.start()  # same port, empty data: the publisher re-registers the stream
            while True:
                try:
                    ws.recv(timeout=0.05)
                except TimeoutError:
                    break
            recv_frames(ws, {"cam1"}, timeout=15)
        reconnects = svc.registry.get_sample_value(REDIS_RECONNECTS, {"component": "websocket"})
        assert (reconnects or 0) >= 1
    finally:
        pub.stop()
        svc.stop()
        server.stop()


def test_cli_sigterm_closes_clients_with_1001_and_exits_0(redis_url: str) -> None:
    port = free_port()
    svc = Service(["websocket", "--redis-url", redis_url, "--host", "127.0.0.1", "--port",
                   str(port)], SECRET_ENV)
    auth = bearer(redis.Redis.from_url(redis_url), Role.VIEWER)
    metrics_url = f"http://127.0.0.1:{svc.metrics_port}"

    def ready() -> bool:
        with urllib.request.urlopen(f"{metrics_url}/readyz", timeout=1) as r:
            return bool(r.status == 200)

    try:
        wait_for(lambda: ready() or not svc.alive(), 20, "ei websocket to become ready")
        assert svc.alive(), svc.output()
        with connect(f"ws://127.0.0.1:{port}/ws", additional_headers=auth) as ws:
            assert json.loads(ws.recv(timeout=5)) == {"streams": []}
            with urllib.request.urlopen(f"{metrics_url}/metrics", timeout=5) as r:
                assert b"ei_ws_clients 1.0" in r.read()
            svc.send(signal.SIGTERM)
            with pytest.raises(ConnectionClosed) as info:
                ws.recv(timeout=10)
            assert info.value.rcvd is not None and info.value.rcvd.code == 1001
    finally:
        code = svc.stop(timeout=15)
    assert code == 0, svc.output()


def test_a_client_that_reads_nothing_does_not_hold_up_the_stop(redis_url: str) -> None:
    """A client whose socket is full cannot take part in a closing handshake (the close frame
    waits behind the unsent data): the service aborts it after its close timeout and stops,
    instead of waiting for the write timeout (20 s)."""
    svc = ServiceThread(redis_url)
    big = make_jpeg(640, 480, noise=True, quality=95)
    pub = Publisher(redis_url, ["cam1"], big, interval=0.02)
    try:
        with svc.connect(max_queue=1, close_timeout=1):
            pub.start()
            # The server's writes to it back up: its mailbox starts replacing frames.
            wait_for(lambda: (svc.registry.get_sample_value(WS_SKIPPED) or 0) > 5, 30,
                     "the stalled client's writes to back up")
            started = time.monotonic()
            svc.service.stop.set()
            svc.thread.join(15)
            took = time.monotonic() - started
            assert not svc.thread.is_alive(), "the service is still waiting for the client"
            assert took < 8, f"stopping took {took:.1f} s"
    finally:
        pub.stop()
        svc.client.close()
