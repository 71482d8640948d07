"""The frame store: each captured JPEG once in Redis, whatever the number of types.

A stream service appends each frame's JPEG to ``ei:frames:{stream}`` (a STREAM capped by
length) and pushes to every type's queue a v2 frame message that carries the entry's id
(core/frame.py). Workers fetch the JPEGs of a batch in one round trip; their results in
``ei:out:{stream}`` carry the same id, so the websocket service, the gateway and ``ei track``
fetch a frame only when they show or keep it. A frame trimmed away before a worker reaches it
is stale (the queue waited longer than the store keeps).

On a Redis Cluster every key of one stream is its own slot and each command here names one
key, so nothing needs a hash tag.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

from . import keys
from .redisconn import RedisClient
from .text import as_text

#: Fewest frames the store keeps per stream, however slow the stream.
MIN_FRAMES = 8
#: Seconds of frames a stream keeps by default (EI_FRAME_KEEP).
DEFAULT_KEEP = 2.0


def store_length(fps: float, keep_seconds: float, queue_maxlen: int = 0) -> int:
    """Entries to keep for a stream at ``fps`` so a frame lives ``keep_seconds``, and at
    least as many as a queue holds (a frame still queued is never trimmed from the store
    first), and :data:`MIN_FRAMES`; an unpaced stream, ``fps`` 0, is counted at 30 fps."""
    return max(MIN_FRAMES, queue_maxlen, math.ceil((fps or 30.0) * keep_seconds))


class FrameStore:
    """Appends JPEGs to the per-stream frame stores and reads them back by entry id."""

    def __init__(self, client: RedisClient) -> None:
        self.client = client

    def add(self, stream: str, jpeg: bytes, maxlen: int) -> str:
        """Append ``jpeg`` and trim the store to about ``maxlen`` entries (whole nodes: a
        JPEG is larger than a node's 4 KB, so the trim is nearly exact); returns the new
        entry's id, which the frame's queue messages and results carry."""
        eid = self.client.xadd(keys.frames(stream), {"jpeg": jpeg}, maxlen=maxlen,
                               approximate=True)
        return as_text(eid)

    def fetch(self, refs: Iterable[tuple[str, str]]) -> list[bytes | None]:
        """The JPEG of each ``(stream, entry id)``, ``None`` for one no longer stored; one
        pipelined round trip (``XRANGE key id id`` per frame)."""
        wanted = list(refs)
        if not wanted:
            return []
        pipe = self.client.pipeline(transaction=False)
        for stream, ref in wanted:
            pipe.xrange(keys.frames(stream), ref, ref, count=1)
        return [_jpeg(raw) for raw in pipe.execute()]

    def fetch_unique(self, refs: Sequence[tuple[str, str]]) -> dict[tuple[str, str], bytes]:
        """:meth:`fetch` of each distinct ref once, as a mapping of those still stored."""
        distinct = list(dict.fromkeys(refs))
        return {ref: jpeg for ref, jpeg in zip(distinct, self.fetch(distinct), strict=True)
                if jpeg is not None}

    def delete(self, streams: Iterable[str]) -> None:
        """Remove the frame stores of ``streams``."""
        for stream in streams:  # one key per command: on a cluster each is its own slot
            self.client.delete(keys.frames(stream))


def _jpeg(raw: Sequence[tuple[bytes, dict[bytes, bytes]]]) -> bytes | None:
    if not raw:
        return None
    jpeg = raw[0][1].get(b"jpeg")
    return jpeg if jpeg else None
