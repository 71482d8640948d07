"""A frame's JPEG reaches a websocket client once, whatever the number of inference types:
real redis-server, real websocket service, real clients, real vtest frames."""

from __future__ import annotations

import json
import time
from collections import Counter
from typing import Any

import pytest
import redis
from websockets.sync.client import ClientConnection

from elastic_inference.core.broker import OutputBroker
from elastic_inference.core.live import decode_frame
from elastic_inference.core.metrics import WS_CLIENTS, WS_SENT, WS_SKIPPED
from elastic_inference.core.registry import StreamRegistry
from tests.jpegs import vtest_jpegs
from tests.outputs import publish
from tests.processes import wait_for
from tests.websocket_service import Publisher, ServiceThread, make_jpeg, make_result

pytestmark = pytest.mark.integration

TYPES = ("people", "face", "car")


def receive(ws: ClientConnection, until: Any, timeout: float = 20.0
            ) -> list[tuple[dict[str, Any], bytes | None, int]]:
    """Live messages (header or text object, JPEG or None, bytes on the wire) until
    ``until(received)`` holds; stream lists are left out."""
    got: list[tuple[dict[str, Any], bytes | None, int]] = []
    deadline = time.monotonic() + timeout
    while not until(got):
        msg = ws.recv(timeout=max(0.01, deadline - time.monotonic()))
        if isinstance(msg, bytes):
            header, jpeg = decode_frame(msg)
            got.append((header, jpeg, len(msg)))
        elif "result" in (data := json.loads(msg)):
            got.append((data, None, len(msg.encode())))
    return got


def results_of(got: list[tuple[dict[str, Any], bytes | None, int]], seq: int) -> set[str]:
    return {m["result"]["type"] for m, _, _ in got if m["result"]["seq"] == seq}


def test_three_types_one_jpeg_per_frame(redis_url: str) -> None:
    """Each seq: one binary message with the JPEG and the other two types' results as text,
    all in about the JPEG's size (it went three times before)."""
    svc = ServiceThread(redis_url)
    client = redis.Redis.from_url(redis_url)
    broker, registry = OutputBroker(client), StreamRegistry(client)
    jpegs = vtest_jpegs(12, width=768)  # the video's own size: about 70 KB each
    try:
        registry.beat("cam1", {"types": list(TYPES), "source_kind": "file"})
        with svc.connect() as ws:
            wait_for(lambda: "cam1" in svc.service.state.cursors, 10,
                     "the service to follow cam1")
            got: list[tuple[dict[str, Any], bytes | None, int]] = []
            for seq, jpeg in enumerate(jpegs):
                # Lock-step (one frame at a time) so that no mailbox ever has to skip one.
                publish(broker, [(make_result("cam1", seq, infer_type=t), jpeg)
                                 for t in TYPES])
                got += receive(ws, lambda g, s=seq: results_of(g, s) == set(TYPES))
    finally:
        svc.stop()
        client.close()
    frames = Counter(m["result"]["seq"] for m, jpeg, _ in got if jpeg is not None)
    assert frames == Counter(range(len(jpegs))), frames  # exactly one binary per seq
    for seq, jpeg in enumerate(jpegs):
        (body,) = [j for m, j, _ in got if j is not None and m["result"]["seq"] == seq]
        assert body == jpeg  # the frame's own JPEG, untouched
        of_seq = [(m, j) for m, j, _ in got if m["result"]["seq"] == seq]
        assert of_seq[0][1] is not None  # the frame comes before the texts of its seq
        texts = [m for m, j in of_seq if j is None]
        assert len(texts) == 2
        assert all(m["stream"] == "cam1" and "-" in m["id"] for m in texts)
        assert all(m["result"]["detections"][0]["label"] == "person" for m in texts)
    wire = sum(n for _, _, n in got)
    jpeg_bytes = sum(len(j) for j in jpegs)
    assert wire <= 1.1 * jpeg_bytes, (wire, jpeg_bytes)
    assert svc.registry.get_sample_value(WS_SENT) == len(jpegs)  # frames only


def test_a_slow_client_still_gets_the_newest_frame(redis_url: str) -> None:
    """A client that reads nothing for a while loses frames (skipped), never the newest
    one, and each type's newest result reaches it."""
    svc = ServiceThread(redis_url)
    big = make_jpeg(640, 480, noise=True, quality=95)  # a few hundred KB: fills buffers fast
    n = 40
    try:
        with svc.connect(max_queue=1) as slow:
            wait_for(lambda: svc.registry.get_sample_value(WS_CLIENTS) == 1, 10,
                     "the service to count the client")
            pub = Publisher(redis_url, ["cam1"], big, interval=0.02, limit=n, types=TYPES)
            pub.start()
            pub.join(30)
            assert pub.seq == n
            pub.stop()
            wait_for(lambda: (svc.registry.get_sample_value(WS_SKIPPED) or 0) > 0, 10,
                     "the slow client's mailbox to skip frames")
            got = receive(slow, lambda g: results_of(g, n - 1) == set(TYPES), timeout=30)
    finally:
        svc.stop()
    frames = Counter(m["result"]["seq"] for m, jpeg, _ in got if jpeg is not None)
    assert max(frames) == n - 1  # the newest frame, with its JPEG
    assert all(count == 1 for count in frames.values()), frames
    assert len(frames) < n  # the client lost intermediate frames
