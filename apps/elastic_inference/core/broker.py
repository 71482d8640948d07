"""Output broker: per-stream live buffer and result history in Redis STREAMs.

``ei:out:{stream}`` holds each type's result JSON and ``ref``, the id of its frame in the
frame store (core/framestore.py: the JPEG is stored once for every type), trimmed to a short
approximate length; readers that show the picture fetch it with
:meth:`OutputBroker.attach_frames`. ``ei:results:{stream}`` holds result JSON only, trimmed
by age. Writers pipeline a whole batch in one round trip. The live reader
(:meth:`OutputBroker.read_live`) also follows ``ei:tracks:{stream}`` (written by ``ei track``,
doc/analytics.md) in the same blocking read, so one reader serves frames and tracks.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import redis
from redis.cluster import RedisCluster

from . import keys
from .framestore import FrameStore
from .redisconn import RedisClient
from .result import Result
from .text import as_text

#: How often a reader on a Redis Cluster polls the streams it follows (see
#: :meth:`OutputBroker._xread`): a frame waits at most this long more than on one server.
CLUSTER_POLL_S = 0.02


@dataclass(frozen=True)
class OutputEntry:
    """One entry of a live buffer: its stream entry id, the JPEG (empty until
    :meth:`OutputBroker.attach_frames` fetched it, and when the store no longer has it), the
    result JSON and the frame's id in the frame store."""

    stream: str
    entry_id: str
    jpeg: bytes
    result: bytes
    ref: str = ""


@dataclass(frozen=True)
class TracksEntry:
    """One entry of a stream's live tracks: its stream entry id and the ``tracks`` JSON."""

    stream: str
    entry_id: str
    tracks: bytes


class OutputBroker:
    """Publishes results and reads them back for the websocket server and the gateway."""

    def __init__(self, client: RedisClient, out_maxlen: int = 32,
                 retention: float = 3600.0) -> None:
        self.client = client
        self.out_maxlen = out_maxlen
        self.retention = retention
        self.frames = FrameStore(client)

    def publish(self, items: Sequence[tuple[Result, str]], now: float | None = None,
                pipe: redis.client.Pipeline | None = None) -> None:
        """Publish ``(result, its frame's id in the frame store)`` pairs in one pipelined
        round trip, or queue them on ``pipe`` to share the caller's."""
        if not items:
            return
        now = time.time() if now is None else now
        min_id = str(int((now - self.retention) * 1000))
        target = pipe if pipe is not None else self.client.pipeline(transaction=False)
        for result, ref in items:
            body = result.encode()
            target.xadd(keys.out(result.stream), {"ref": ref, "result": body},
                        maxlen=self.out_maxlen, approximate=True)
            target.xadd(keys.results(result.stream), {"result": body},
                        minid=min_id, approximate=True)
        if pipe is None:
            target.execute()

    def attach_frames(self, entries: Sequence[OutputEntry]) -> list[OutputEntry]:
        """``entries`` with the JPEG of each that refers to the frame store, fetched in one
        round trip (each frame once); one the store no longer has keeps an empty ``jpeg``."""
        wanted = [(e.stream, e.ref) for e in entries if e.ref and not e.jpeg]
        if not wanted:
            return list(entries)
        found = self.frames.fetch_unique(wanted)
        return [replace(e, jpeg=found.get((e.stream, e.ref), b"")) if e.ref and not e.jpeg
                else e for e in entries]

    def latest(self, stream: str, count: int = 1) -> list[OutputEntry]:
        """The newest ``count`` live entries of ``stream``, newest first."""
        raw = self.client.xrevrange(keys.out(stream), count=count)
        return [self._entry(stream, eid, fields) for eid, fields in raw]

    def read(self, cursors: Mapping[str, str], block_ms: int | None = 1000,
             count: int = 4) -> list[OutputEntry]:
        """Entries after each stream's cursor (``$`` = only new ones), oldest first."""
        return [e for e in self.read_live(cursors, {}, block_ms, count)
                if isinstance(e, OutputEntry)]

    def latest_tracks_id(self, stream: str) -> str | None:
        """The entry id of the newest live tracks entry of ``stream``; None when it has none."""
        raw = self.client.xrevrange(keys.tracks(stream), count=1)
        return as_text(raw[0][0]) if raw else None

    def read_live(self, cursors: Mapping[str, str], track_cursors: Mapping[str, str],
                  block_ms: int | None = 1000, count: int = 4
                  ) -> list[OutputEntry | TracksEntry]:
        """Entries after each cursor of the live buffers (``cursors``) and of the live tracks
        (``track_cursors``), in one XREAD, so neither kind waits for the other's timeout."""
        named: dict[str, tuple[bool, str]] = {keys.out(s): (False, s) for s in cursors}
        named.update({keys.tracks(s): (True, s) for s in track_cursors})
        if not named:
            return []
        ask = {keys.out(s): c for s, c in cursors.items()}
        ask.update({keys.tracks(s): c for s, c in track_cursors.items()})
        out: list[OutputEntry | TracksEntry] = []
        for key, entries in self._xread(ask, count, block_ms):
            is_tracks, stream = named[as_text(key)]
            for eid, fields in entries:
                out.append(TracksEntry(stream, as_text(eid), fields.get(b"tracks", b""))
                           if is_tracks else self._entry(stream, eid, fields))
        return out

    def _xread(self, ask: Mapping[str, str], count: int, block_ms: int | None
               ) -> list[tuple[Any, list[tuple[Any, Any]]]]:
        """XREAD of ``ask`` (key -> cursor). One blocking XREAD on a single server; a Redis
        Cluster refuses one XREAD over keys of several hash slots, so there each key is read
        without blocking, all in one pipelined round trip per node, every
        :data:`CLUSTER_POLL_S` until something comes or ``block_ms`` passes. The streams keep
        their own slots: one tag for all would put every stream's video on one node."""
        if not isinstance(self.client, RedisCluster):
            return self.client.xread(ask, count=count, block=block_ms) or []
        deadline = time.monotonic() + (block_ms or 0) / 1000
        ask = self._resolve_new(ask)
        while True:
            pipe = self.client.pipeline(transaction=False)
            for key, cursor in ask.items():
                pipe.xread({key: cursor}, count=count)
            found = [hit for reply in pipe.execute() for hit in (reply or [])]
            if found or time.monotonic() >= deadline:
                return found
            time.sleep(min(CLUSTER_POLL_S, max(0.0, deadline - time.monotonic())))

    def _resolve_new(self, ask: Mapping[str, str]) -> dict[str, str]:
        """``ask`` with each ``$`` (only new entries) replaced by the key's newest entry id as
        it is now (``0-0`` for a key without entries), so that polls see what comes meanwhile,
        as a blocking XREAD would."""
        new = [k for k, c in ask.items() if c == "$"]
        if not new:
            return dict(ask)
        pipe = self.client.pipeline(transaction=False)
        for key in new:
            pipe.xrevrange(key, count=1)
        newest = {k: as_text(raw[0][0]) if raw else "0-0"
                  for k, raw in zip(new, pipe.execute(), strict=True)}
        return {k: newest.get(k, c) for k, c in ask.items()}

    def history(self, stream: str, since: float, until: float, count: int | None = None, *,
                after: str = "", reverse: bool = False) -> list[tuple[str, bytes]]:
        """Result JSON of ``stream`` published between ``since`` and ``until`` (epoch s),
        oldest first, or newest first with ``reverse``.

        A long range is read in pages of ``count``: pass the last entry id of a page as
        ``after`` to continue beyond it (exclusive) in the same direction.
        """
        key, low, high = keys.results(stream), str(int(since * 1000)), str(int(until * 1000))
        if reverse:
            raw = self.client.xrevrange(key, max=f"({after}" if after else high, min=low,
                                        count=count)
        else:
            raw = self.client.xrange(key, min=f"({after}" if after else low, max=high,
                                     count=count)
        return [(as_text(eid), fields[b"result"]) for eid, fields in raw if b"result" in fields]

    def prune_history(self, before: float, dry_run: bool = False) -> dict[str, int]:
        """Trim every stream's result history to entries from ``before`` (epoch s) on.

        Returns entries removed (or that would be) per stream. Workers already trim by
        ``results_retention`` as they publish; this covers streams that stopped publishing.
        """
        min_id = f"{int(before * 1000)}-0"
        removed: dict[str, int] = {}
        prefix = len(keys.results("x")) - 1
        for key in self.client.scan_iter(match=keys.results_pattern(), count=500):
            old = len(self.client.xrange(key, "-", f"({min_id}")) if dry_run else \
                int(self.client.xtrim(key, minid=min_id, approximate=False))
            if old:
                removed[as_text(key)[prefix:]] = old
        return removed

    def delete(self, streams: Iterable[str]) -> None:
        """Remove the live buffers, frame stores and histories of ``streams``."""
        names = [k for s in streams for k in (keys.out(s), keys.frames(s), keys.results(s))]
        if names:
            self.client.delete(*names)

    @staticmethod
    def _entry(stream: str, eid: bytes | str, fields: Mapping[bytes, bytes]) -> OutputEntry:
        return OutputEntry(stream, as_text(eid), b"", fields.get(b"result", b""),
                           as_text(fields.get(b"ref", b"")))
