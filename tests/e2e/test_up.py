"""``ei up`` end to end: three sample streams, results for each, a websocket client sees all;
a camera of three types added through the API is stored and sent once per frame."""

from __future__ import annotations

import asyncio
import json
import re
import signal
import time
from pathlib import Path
from typing import Any

import pytest
import redis
import websockets

from elastic_inference.core import keys
from elastic_inference.core.live import MAX_FRAME_MESSAGE_BYTES, decode_frame
from elastic_inference.core.sessions import CSRF_HEADER
from tests.e2e.frame_once import copies, stored_bytes, view
from tests.processes import Service, get_json, http, wait_for
from tests.redis_server import free_port

pytestmark = pytest.mark.e2e

STREAMS = {"vtest-people", "vtest-car", "megamind-face"}
ALL_TYPES = "vtest-all"
EMBEDDED_REDIS = re.compile(r"embedded Redis at (\S+)")


FIRST_ADMIN = re.compile(r"created user 'admin' with password\n\n    (\S+)\n")


async def streams_seen_on_websocket(url: str, timeout: float, cookie: str
                                    ) -> dict[str, dict[str, object]]:
    """Read binary messages until each stream has sent one; return a result per stream."""
    seen: dict[str, dict[str, object]] = {}
    deadline = time.monotonic() + timeout
    async with websockets.connect(url, open_timeout=10, max_size=MAX_FRAME_MESSAGE_BYTES,
                                  additional_headers={"Cookie": cookie}) as ws:
        while set(seen) != STREAMS and time.monotonic() < deadline:
            msg = await asyncio.wait_for(ws.recv(), max(0.1, deadline - time.monotonic()))
            if not isinstance(msg, bytes):
                continue
            header, jpeg = decode_frame(msg)
            assert jpeg[:2] == b"\xff\xd8", "payload is not the JPEG"
            seen[header["stream"]] = header["result"]
    return seen


def login(port: int, password: str) -> str:
    """Log in as the first admin; the session cookie as a Cookie header's value."""
    status, headers, body = http(f"http://127.0.0.1:{port}/api/login", "POST",
                                 json.dumps({"name": "admin", "password": password}).encode(),
                                 {"Content-Type": "application/json"})
    assert status == 200, body
    return str(headers["Set-Cookie"]).split(";", 1)[0]


def check_a_frame_is_stored_and_sent_once(port: int, ws_port: int, cookie: str,
                                          output: str) -> None:
    """A camera of three types added through the API: each of its JPEGs is in Redis once
    (with everything referring to it, at most 1.1x its size) and reaches a viewer once."""
    status, _, body = http(f"http://127.0.0.1:{port}/api/me", headers={"Cookie": cookie})
    csrf = json.loads(body)["csrf"]
    status, _, body = http(
        f"http://127.0.0.1:{port}/api/sources", "POST",
        json.dumps({"id": ALL_TYPES, "source": "vtest.avi", "types": ["people", "car", "face"],
                    "fps": 4}).encode(),
        {"Cookie": cookie, CSRF_HEADER: csrf, "Content-Type": "application/json"})
    assert status == 201, body
    url = EMBEDDED_REDIS.search(output)
    assert url, "ei up names its embedded Redis"
    client = redis.Redis.from_url(url.group(1))
    wait_for(lambda: client.xlen(keys.out(ALL_TYPES)) >= 6, 60, "results of the new camera")
    viewed = asyncio.run(view(f"ws://127.0.0.1:{ws_port}/ws", cookie, ALL_TYPES, 6.0))
    assert viewed.frames, "no frame of the camera reached the viewer"
    assert all(len(sizes) == 1 for sizes in viewed.frames.values()), viewed.frames
    whole = [s for s, types in viewed.types.items() if len(types) == 3 and s in viewed.frames]
    assert whole, viewed.types  # every type's result of one frame, its JPEG once
    for seq in whole:
        assert viewed.bytes[seq] <= 1.1 * viewed.frames[seq][0], (seq, viewed.bytes[seq])
    stored = stored_bytes(client, ALL_TYPES)
    assert stored
    for ref, (jpeg, total) in stored.items():
        assert total <= 1.1 * jpeg, (ref, jpeg, total)
    newest = client.xrevrange(keys.frames(ALL_TYPES), count=1)[0][1][b"jpeg"]
    assert copies(client, newest) == 1


def test_up_serves_three_streams_with_results(model_dir: Path, sample_dir: Path,
                                              tmp_path: Path) -> None:
    """Also: the first start makes an admin and shows its password once; nothing is served
    without logging in. TMPDIR gives this ``ei up`` a state directory of its own."""
    port, ws_port = free_port(), free_port()
    up = Service(["up", "--port", str(port), "--ws-port", str(ws_port), "--model-dir",
                  str(model_dir), "--sample-dir", str(sample_dir), "--fps", "8"],
                 env={"TMPDIR": str(tmp_path)}, own_group=True)
    started = time.monotonic()
    try:
        api = f"http://127.0.0.1:{port}/api/streams"
        shown = wait_for(lambda: FIRST_ADMIN.search(up.output()), 30, "the admin's password")
        assert len(FIRST_ADMIN.findall(up.output())) == 1
        wait_for(lambda: get_json(api)[0] == 401, 60, "the gateway to refuse a stranger")
        cookie = {"Cookie": login(port, shown.group(1))}

        def api_json(url: str) -> tuple[int, Any]:
            status, _, body = http(url, headers=cookie)
            return status, json.loads(body)

        listed = wait_for(lambda: {s["id"] for s in api_json(api)[1]["streams"]} == STREAMS,
                          60, "/api/streams to list the three streams")
        assert listed
        # They are managed sources, read by the stream pool ei up runs.
        sources = api_json(f"http://127.0.0.1:{port}/api/sources")[1]["sources"]
        assert {s["id"] for s in sources} == STREAMS
        assert all(s["kind"] == "file" and s["state"].get("replica", "").startswith("stream-")
                   for s in sources), sources

        def all_have_results() -> bool:
            return all(api_json(f"{api}/{s}/latest")[0] == 200 for s in STREAMS)

        wait_for(all_have_results, 60 - (time.monotonic() - started),
                 "results for every stream within 60 s of start")
        seen = asyncio.run(streams_seen_on_websocket(f"ws://127.0.0.1:{ws_port}/ws", 30,
                                                     cookie["Cookie"]))
        assert set(seen) == STREAMS
        assert {r["type"] for r in seen.values()} == {"people", "car", "face"}
        check_a_frame_is_stored_and_sent_once(port, ws_port, cookie["Cookie"], up.output())
        assert up.alive(), up.output()[-3000:]
    finally:
        up.send(signal.SIGINT, group=True)  # a terminal's Ctrl-C: the whole foreground group
        code = up.stop(timeout=30)
    out = up.output()
    assert code == 0, out[-3000:]
    assert "all services stopped" in out
    # Only `ei up` saw the Ctrl-C; each child got one SIGTERM from it and drained.
    assert "second SIG" not in out, out[-3000:]
    children = out.count(" (pid ")  # "started NAME (pid N)", once per child
    # A stream pool, three workers, the runner, the tracker, the websocket server, the gateway.
    assert children >= 8 and out.count("SIGTERM received, draining") == children, out[-3000:]
