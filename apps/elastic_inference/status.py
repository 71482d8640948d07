"""``ei status``: one table of queues, workers and streams, read from Redis."""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence

import redis

from .core.queue import FrameQueue
from .core.redisconn import connect
from .core.registry import StreamRegistry, WorkerRegistry, worker_types
from .core.settings import StatusSettings, parse_settings


def table(rows: Sequence[Sequence[object]], header: Sequence[str]) -> str:
    """Plain left-aligned columns, wide enough for every cell."""
    cells = [[str(c) for c in header], *[[str(c) for c in r] for r in rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
                     for r in cells)


def render(client: redis.Redis) -> str:
    """The status report as text (separate from main so tests can call it)."""
    streams = StreamRegistry(client)
    live = streams.members()
    types = sorted(set(worker_types(client))
                   | {t for m in live for t in m.info.get("types", [])})
    queue_rows, worker_rows = [], []
    for t in types:
        st = FrameQueue(client, t).stats()
        workers = WorkerRegistry(client, t).members()
        fps = sum(float(w.info.get("infer_fps", 0)) for w in workers)
        queue_rows.append((t, st.length, len(workers), f"{fps:.1f}", st.pushed,
                           st.drops["overflow"], st.drops["stale"], st.drops["invalid"]))
        worker_rows += [(w.id, t, w.info.get("model", "?"), w.info.get("device", "?"),
                         w.info.get("infer_fps", 0), w.info.get("capacity_fps", 0),
                         w.info.get("frames", 0)) for w in workers]
    now = time.time()
    stream_rows = [(m.id, ",".join(m.info.get("types", [])), m.info.get("source_kind", "?"),
                    f"{m.info.get('w', '?')}x{m.info.get('h', '?')}", m.info.get("fps", "?"),
                    m.info.get("state", "?"), f"{now - m.last_seen:.1f}s")
                   for m in live]
    return "\n\n".join([
        "QUEUES\n" + table(queue_rows, ("type", "length", "workers", "infer_fps", "pushed",
                                        "overflow", "stale", "invalid")),
        "WORKERS\n" + table(worker_rows, ("worker", "type", "model", "device", "infer_fps",
                                          "capacity_fps", "frames")),
        "STREAMS\n" + table(stream_rows, ("stream", "types", "source", "size", "fps", "state",
                                          "last_seen")),
    ])


def main(argv: list[str]) -> int:
    settings = parse_settings(StatusSettings, argv, prog="ei status")
    client = connect(settings.redis_url)
    try:
        sys.stdout.write(render(client) + "\n")
    finally:
        client.close()
    return 0
