"""Live streams, their snapshots and result history, system status and health."""

from __future__ import annotations

import logging
import time

import tornado.web
import tornado.websocket

from ...core import keys
from ...core.history import query_counts, query_results
from ...core.snapshot import (
    SNAPSHOT_SCAN,
    latest_by_type,
    latest_snapshot,
)
from ...core.status import collect_status
from .base import PUBLIC, VIEW, BaseHandler, render_snapshot
from .params import parse_label, parse_limit, parse_range, parse_step

log = logging.getLogger(__name__)



class StreamsHandler(BaseHandler):
    access = VIEW

    async def get(self) -> None:
        members = await self.run(self.ctx.registry.members)
        self.write_json({"streams": [m.to_json() for m in members]})


class StreamHandler(BaseHandler):
    access = VIEW

    async def get(self, raw_id: str) -> None:
        stream = self.stream_id(raw_id)
        members = await self.run(self.ctx.registry.members)
        for member in members:
            if member.id == stream:
                self.write_json(member.to_json())
                return
        raise tornado.web.HTTPError(404, "unknown stream %r", stream)


class SnapshotHandler(BaseHandler):
    access = VIEW

    async def get(self, raw_id: str) -> None:
        stream = self.stream_id(raw_id)
        snap = await self.run(latest_snapshot, self.ctx.broker, stream)
        if snap is None:
            raise tornado.web.HTTPError(404, "no output yet for stream %r", stream)
        if not snap.jpeg:
            raise tornado.web.HTTPError(404, "no frame of stream %r is stored any more (the "
                                        "frame store keeps EI_FRAME_KEEP seconds)", stream)
        try:
            body = await self.run(render_snapshot, snap)
        except ValueError as exc:
            log.warning("snapshot of %s: cannot annotate frame seq %d: %s", stream, snap.seq, exc)
            raise tornado.web.HTTPError(502, "the latest frame of %r is not a decodable JPEG",
                                        stream) from exc
        self.set_header("Content-Type", "image/jpeg")
        self.set_header("Cache-Control", "no-store")
        self.set_header("X-EI-Seq", str(snap.seq))
        self.finish(body)


class LatestHandler(BaseHandler):
    access = VIEW

    async def get(self, raw_id: str) -> None:
        stream = self.stream_id(raw_id)
        entries = await self.run(self.ctx.broker.latest, stream, SNAPSHOT_SCAN)
        results = latest_by_type(entries)
        if not results:
            raise tornado.web.HTTPError(404, "no results yet for stream %r", stream)
        self.write_json({"stream": stream, "results": results})


class HistoryHandler(BaseHandler):
    """Shared by /results and /counts: the stream id and the time range."""

    def time_range(self) -> tuple[float, float]:
        return self.param(parse_range, self.query("since"), self.query("until"), time.time())

    async def check_known(self, stream: str, found: bool) -> None:
        """404 only for a stream that is neither live nor has any history at all."""
        if not found and not await self.run(self.ctx.stream_known, stream,
                                            keys.results(stream)):
            raise tornado.web.HTTPError(404, "unknown stream %r", stream)


class ResultsHandler(HistoryHandler):
    access = VIEW

    async def get(self, raw_id: str) -> None:
        stream = self.stream_id(raw_id)
        since, until = self.time_range()
        limit = self.param(parse_limit, self.query("limit"))
        label = self.param(parse_label, self.query("label"))
        results, truncated = await self.run(query_results, self.ctx.broker, stream, since,
                                            until, limit, label)
        await self.check_known(stream, bool(results))
        self.write_json({"stream": stream, "since": since, "until": until,
                         "results": results, "truncated": truncated})


class CountsHandler(HistoryHandler):
    access = VIEW

    async def get(self, raw_id: str) -> None:
        stream = self.stream_id(raw_id)
        since, until = self.time_range()
        step = self.param(parse_step, self.query("step"), since, until)
        series, found = await self.run(query_counts, self.ctx.broker, stream, since, until,
                                       step)
        await self.check_known(stream, found)
        self.write_json({"stream": stream, "since": since, "until": until, "step": step,
                         "series": series})


class StatusHandler(BaseHandler):
    access = VIEW

    async def get(self) -> None:
        self.write_json(await self.run(collect_status, self.ctx.client))


class ConfigHandler(BaseHandler):
    """What a browser page needs to know about its deployment (the websocket URL)."""

    access = VIEW

    def get(self) -> None:
        self.write_json({"websocket_url": self.ctx.websocket_url or None})


class HealthHandler(BaseHandler):
    access = PUBLIC

    def get(self) -> None:
        self.write_json({"status": "ok"})


class ReadyHandler(BaseHandler):
    access = PUBLIC

    async def get(self) -> None:
        await self.run(self.ctx.client.ping)
        self.write_json({"status": "ready"})
