"""``ei status``: one table of queues, workers and streams, read from Redis."""

from __future__ import annotations

import sys
import time

from ..core.redisconn import RedisClient, connect
from ..core.registry import StreamRegistry
from ..core.settings import StatusSettings, parse_settings
from ..core.status import type_status
from .table import table


def render(client: RedisClient) -> str:
    """The status report as text (separate from main so tests can call it)."""
    live = StreamRegistry(client).members()
    queue_rows, worker_rows = [], []
    for row in type_status(client, live):
        t, queue, workers = row["type"], row["queue"], row["workers"]
        drops = queue["drops"]
        # Summed unrounded: the row's infer_fps is rounded to 2 decimals first, so 7.1 + 7.05
        # would print 14.2 here instead of 14.1.
        fps = sum(float(w.get("infer_fps", 0)) for w in workers)
        queue_rows.append((t, queue["length"], len(workers), f"{fps:.1f}",
                           queue["pushed"], drops["overflow"], drops["stale"], drops["invalid"]))
        worker_rows += [(w["id"], t, w.get("model", "?"), w.get("device", "?"),
                         w.get("infer_fps", 0), w.get("capacity_fps", 0), w.get("frames", 0))
                        for w in workers]
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
