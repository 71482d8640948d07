"""Live frames and output as the services write them, for tests of their readers."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from elastic_inference.core import keys
from elastic_inference.core.broker import OutputBroker
from elastic_inference.core.frame import Frame, decode
from elastic_inference.core.framestore import FrameStore
from elastic_inference.core.redisconn import RedisClient
from elastic_inference.core.result import Result


def publish(broker: OutputBroker, items: Sequence[tuple[Result, bytes]],
            now: float | None = None, maxlen: int = 64) -> list[str]:
    """Store each distinct ``(stream, seq)``'s JPEG once in the frame store, then publish the
    results referring to it (what a stream service and its workers do together); returns the
    refs, one per item."""
    refs: dict[tuple[str, int], str] = {}
    for result, jpeg in items:
        if (result.stream, result.seq) not in refs:
            refs[(result.stream, result.seq)] = broker.frames.add(result.stream, jpeg, maxlen)
    pairs = [(r, refs[(r.stream, r.seq)]) for r, _ in items]
    broker.publish(pairs, now)
    return [ref for _, ref in pairs]


def queued(client: RedisClient, infer_type: str) -> list[Frame]:
    """The frames waiting in a type's queue, oldest first, each with its JPEG fetched from the
    frame store (left empty when the store no longer has it)."""
    frames = [decode(m) for m in client.lrange(keys.queue(infer_type), 0, -1)]
    jpegs = FrameStore(client).fetch([(f.stream, f.ref) for f in frames])
    return [replace(f, jpeg=j) if j is not None else f
            for f, j in zip(frames, jpegs, strict=True)]
