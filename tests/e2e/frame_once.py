"""Checks that a frame of a stream with several types is in Redis once and reaches a viewer
once, on a running system (tests/e2e/test_up.py)."""

from __future__ import annotations

import asyncio
import json
import time
from collections import defaultdict
from dataclasses import dataclass, field

import redis
import websockets

from elastic_inference.core import keys
from elastic_inference.core.live import MAX_FRAME_MESSAGE_BYTES, decode_frame


@dataclass
class Viewed:
    """What one viewer received for one stream, per seq: binary messages (each with its
    JPEG's size), every message's bytes, and the types whose results came."""

    frames: dict[int, list[int]] = field(default_factory=lambda: defaultdict(list))
    bytes: dict[int, int] = field(default_factory=lambda: defaultdict(int))
    types: dict[int, set[str]] = field(default_factory=lambda: defaultdict(set))


async def view(url: str, cookie: str, stream: str, seconds: float) -> Viewed:
    """Every message of ``stream`` for ``seconds``, as a browser receives them."""
    seen = Viewed()
    deadline = time.monotonic() + seconds
    async with websockets.connect(url, open_timeout=10, max_size=MAX_FRAME_MESSAGE_BYTES,
                                  additional_headers={"Cookie": cookie}) as ws:
        await ws.send(json.dumps({"subscribe": [stream]}))
        while (left := deadline - time.monotonic()) > 0:
            try:
                msg = await asyncio.wait_for(ws.recv(), left)
            except TimeoutError:
                break
            if isinstance(msg, bytes):
                header, jpeg = decode_frame(msg)
                result = header["result"]
                seen.frames[result["seq"]].append(len(jpeg))
            else:
                result = json.loads(msg).get("result")
                if result is None or result.get("stream") != stream:
                    continue  # the stream list, or another kind of message
            seen.bytes[result["seq"]] += len(msg)
            seen.types[result["seq"]].add(result["type"])
    return seen


def copies(client: redis.Redis, needle: bytes) -> int:
    """How many values anywhere in Redis contain ``needle`` (strings, lists, hashes, streams,
    sets and sorted sets), scanning every key."""
    found = 0
    for key in client.scan_iter(count=1000):
        kind = client.type(key).decode()
        values: list[bytes] = []
        if kind == "string":
            values = [client.get(key) or b""]
        elif kind == "list":
            values = client.lrange(key, 0, -1)
        elif kind == "hash":
            values = client.hvals(key)
        elif kind == "stream":
            values = [v for _, fields in client.xrange(key) for v in fields.values()]
        elif kind in ("set", "zset"):
            values = list(client.smembers(key)) if kind == "set" else \
                client.zrange(key, 0, -1)
        found += sum(needle in v for v in values)
    return found


def stored_bytes(client: redis.Redis, stream: str) -> dict[str, tuple[int, int]]:
    """Per frame still in ``stream``'s frame store: (its JPEG's size, the bytes of it and of
    every queue message and live result that refers to it)."""
    frames = {eid.decode(): len(fields[b"jpeg"])
              for eid, fields in client.xrange(keys.frames(stream))}
    total = dict(frames)
    for _, fields in client.xrange(keys.out(stream)):
        ref = fields.get(b"ref", b"").decode()
        if ref in total:
            total[ref] += sum(len(k) + len(v) for k, v in fields.items())
    for raw in (m for t in ("people", "car", "face") for m in
                client.lrange(keys.queue(t), 0, -1)):
        for ref in total:
            if ref.encode() in raw:
                total[ref] += len(raw)
    return {ref: (frames[ref], total[ref]) for ref in frames}
