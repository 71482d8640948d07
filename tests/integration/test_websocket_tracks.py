"""Live tracks through the websocket fan-out, against a real redis-server and the real service.

The entries written to ``ei:tracks:{stream}`` here play ``ei track``'s part (doc/analytics.md,
"Wire: tracks, counts and events"): the service forwards each as ``{"tracks": {...}}`` to the
clients subscribed to the stream.
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
import redis
from websockets.sync.client import ClientConnection

from elastic_inference.core import keys
from elastic_inference.core.metrics import WS_TRACKS_INVALID
from elastic_inference.core.registry import StreamRegistry
from tests.processes import wait_for
from tests.websocket_service import ServiceThread

pytestmark = pytest.mark.integration


def tracks_doc(stream: str, seq: int, infer_type: str = "people") -> dict[str, Any]:
    return {"v": 1, "stream": stream, "type": infer_type, "seq": seq,
            "ts_capture": time.time(), "frame": {"w": 768, "h": 576}, "rules_version": 1,
            "tracks": [{"id": 7, "label": "person", "score": 0.83,
                        "box": [0.1, 0.2, 0.15, 0.4], "age": 12}],
            "counts": {"gate": {"a->b": 4, "b->a": 3}}}


def recv_tracks(ws: ClientConnection, timeout: float) -> list[dict[str, Any]]:
    """Every ``{"tracks": ...}`` message received until ``timeout`` passes."""
    got: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    while (left := deadline - time.monotonic()) > 0:
        try:
            msg = ws.recv(timeout=left)
        except TimeoutError:
            break
        if isinstance(msg, str) and "tracks" in (data := json.loads(msg)):
            got.append(data["tracks"])
    return got


def subscribed(ws: ClientConnection, streams: list[str]) -> None:
    """Subscribe and wait until the server applied it (its reply to a bad message comes after)."""
    ws.send(json.dumps({"subscribe": streams}))
    ws.send("{marker")
    while not (isinstance(msg := ws.recv(timeout=10), str) and "error" in json.loads(msg)):
        pass


def test_tracks_reach_subscribers_and_malformed_entries_are_skipped(
        service: ServiceThread, redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    registry = StreamRegistry(client)
    for s in ("cam1", "cam2"):
        registry.beat(s, {"types": ["people"], "source_kind": "file"})
    with service.connect() as ws:
        subscribed(ws, ["cam1"])
        # The service starts following a stream's tracks at its next refresh (0.2 s here).
        wait_for(lambda: "cam1" in service.service.state.track_cursors, 10,
                 "the reader to follow cam1's tracks")
        client.xadd(keys.tracks("cam1"), {"tracks": b"{not json"})
        client.xadd(keys.tracks("cam1"), {"tracks": b"[1, 2]"})
        client.xadd(keys.tracks("cam1"), {"other": b"no tracks field"})
        client.xadd(keys.tracks("cam2"), {"tracks": json.dumps(tracks_doc("cam2", 1))})
        good = tracks_doc("cam1", 42)
        client.xadd(keys.tracks("cam1"), {"tracks": json.dumps(good)})
        got = recv_tracks(ws, 3.0)
    client.close()
    assert got == [good]  # the valid entry, as written; cam2 is not subscribed
    assert service.registry.get_sample_value(WS_TRACKS_INVALID) == 3


def test_latest_tracks_of_each_type_reach_a_client_of_every_stream(
        service: ServiceThread, redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    StreamRegistry(client).beat("cam1", {"types": ["people", "face"], "source_kind": "file"})
    with service.connect() as ws:
        wait_for(lambda: "cam1" in service.service.state.track_cursors, 10,
                 "the reader to follow cam1's tracks")
        for seq in range(5):
            for t in ("people", "face"):
                client.xadd(keys.tracks("cam1"), {"tracks": json.dumps(tracks_doc("cam1", seq, t))})
        got = recv_tracks(ws, 3.0)
    client.close()
    # A fast client gets them all, in order per type; the newest of each type arrives.
    for t in ("people", "face"):
        seqs = [m["seq"] for m in got if m["type"] == t]
        assert seqs and seqs == sorted(seqs) and seqs[-1] == 4, got
