"""``ei stream``: one video source (file, webcam or URL) feeding the frame queues of its types.

One process per source, or (``--pool``) a replica of the pool that reads the managed
sources (pool.py, doc/sources.md). Each captured frame is downscaled, JPEG-encoded once and
pushed to every inference type's bounded queue in one round trip, so adding a type costs a
queue entry, not an encode. The loop never blocks on Redis: while Redis is down a live source
keeps grabbing (its frames are dropped undecoded), a file holds its position, and pushing
resumes on its own. A live source that fails is reopened with backoff; a file loops.
See doc/streams.md.
"""

from __future__ import annotations

from functools import partial

from ...core.runtime import running
from ...core.settings import StreamSettings, parse_settings
from .pacing import Pacer
from .pool import StreamPool
from .service import STATES, StreamService
from .source import (
    REOPEN_CAP,
    Read,
    Source,
    SourceSpec,
    derive_stream_id,
    open_capture,
    parse_source,
    reopen_delay,
    sanitize_id,
)

__all__ = [
    "REOPEN_CAP",
    "STATES",
    "Pacer",
    "Read",
    "Source",
    "SourceSpec",
    "StreamPool",
    "StreamService",
    "derive_stream_id",
    "main",
    "open_capture",
    "parse_source",
    "reopen_delay",
    "sanitize_id",
]


def main(argv: list[str]) -> int:
    """``ei stream``: parse settings once, then stream until SIGTERM/SIGINT (exit 0)."""
    settings = parse_settings(StreamSettings, argv, prog="ei stream")
    if settings.pool:
        with running("stream", settings, redis_retries=1) as (runtime, client):
            return StreamPool(settings, runtime, client).run() or runtime.exit_code
    spec = parse_source(settings.source)
    stream_id = settings.stream_id or derive_stream_id(spec)
    # One quick retry covers a stale pooled connection; longer outages are the loop's Backoff,
    # so capture never stalls inside redis-py's own retries.
    source = Source(spec, partial(open_capture, timeout_ms=settings.capture_timeout_ms()))
    with running("stream", settings, redis_retries=1) as (runtime, client):
        return StreamService(settings, runtime, client, source, stream_id).run() \
            or runtime.exit_code
