"""MJPEG viewers: the newest annotated frame of a stream as multipart/x-mixed-replace."""

from __future__ import annotations

import logging
import time

import tornado.web
import tornado.websocket
from tornado.http1connection import HTTP1Connection
from tornado.ioloop import IOLoop
from tornado.iostream import StreamClosedError

from ...core import clients, keys
from ...core.redisconn import REDIS_DOWN_ERRORS
from ...core.runtime import LIVE_SOCKET_BUFFER, cap_socket_buffers
from ...core.snapshot import (
    SnapshotFollower,
)
from .base import VIEW, BaseHandler, render_snapshot
from .params import parse_fps

log = logging.getLogger(__name__)

#: Longest blocking XREAD of a viewer: bounds how late it notices a disconnect or shutdown.
MJPEG_BLOCK_MS = 500
MJPEG_BOUNDARY = "eiframe"



def mjpeg_part(jpeg: bytes) -> bytes:
    """One part of a ``multipart/x-mixed-replace`` body."""
    head = (f"--{MJPEG_BOUNDARY}\r\nContent-Type: image/jpeg\r\n"
            f"Content-Length: {len(jpeg)}\r\n\r\n").encode("ascii")
    return b"".join((head, jpeg, b"\r\n"))


class MjpegFollower(SnapshotFollower):
    """A snapshot follower that also draws the boxes (the engine's job, so not in core)."""

    def next_frame(self, block_ms: int) -> tuple[int, bytes] | None:
        """``(seq, annotated JPEG)`` of the newest frame once the picture changed; ``None``
        after ``block_ms`` without news, when nothing changed or the frame is no JPEG."""
        snap = self.next_snapshot(block_ms)
        if snap is None:
            return None
        try:
            return snap.seq, render_snapshot(snap)
        except ValueError as exc:
            log.debug("mjpeg %s: frame seq %d skipped: %s", self.stream, snap.seq, exc)
            return None


class MjpegHandler(BaseHandler):
    """The newest annotated frame of a stream, pushed as ``multipart/x-mixed-replace``.

    Viewable in an ``<img>``, a browser tab, ffplay or VLC. Each part is rendered only once
    the previous one has been flushed to the client, from the newest frame at that moment:
    a slow client gets fewer frames, never a backlog.
    """

    access = VIEW

    gone = False
    capped = False

    def on_connection_close(self) -> None:
        self.gone = True
        super().on_connection_close()

    async def get(self, raw_id: str) -> None:
        stream = self.stream_id(raw_id)
        fps = self.param(parse_fps, self.query("fps"))
        ctx = self.ctx
        client = clients.client_key(ctx.client_ip(self.request))
        refused = ctx.mjpeg_caps.admit(client)  # before any await, so the bound holds
        if refused is not None:
            raise tornado.web.HTTPError(429 if refused.per_client else 503, "%s",
                                        refused.message)
        try:
            if not await self.run(ctx.stream_known, stream, keys.out(stream)):
                raise tornado.web.HTTPError(404, "unknown stream %r", stream)
            self.set_header("Content-Type",
                            f"multipart/x-mixed-replace; boundary={MJPEG_BOUNDARY}")
            self.set_header("Cache-Control", "no-store")
            self.set_header("X-Accel-Buffering", "no")  # proxies must not hold parts back
            await self.flush_or_drop()
            await self.stream_frames(MjpegFollower(ctx.broker, stream), 1.0 / fps)
            if not self.gone:
                self.finish(f"--{MJPEG_BOUNDARY}--\r\n".encode("ascii"))
        except StreamClosedError:
            self.gone = True
        finally:
            ctx.mjpeg_caps.release(client)

    async def flush_or_drop(self) -> None:
        """Flush, or close a connection whose client has not taken the data within the write
        timeout (a viewer that stopped reading would otherwise hold its slot forever)."""
        conn = self.request.connection
        if not isinstance(conn, HTTP1Connection) or conn.stream is None:
            return await self.flush()
        if not self.capped:  # a small buffer: a viewer that stops reading is noticed soon
            cap_socket_buffers(conn.stream.socket, send=LIVE_SOCKET_BUFFER)
            self.capped = True
        if not await clients.finished_within(self.flush(), self.ctx.limits.write_timeout):
            log.info("mjpeg: dropping viewer %s: nothing read for %g s", self.request.remote_ip,
                     self.ctx.limits.write_timeout)
            conn.stream.close()  # the client is gone as far as the handler is concerned
            self.gone = True

    async def stream_frames(self, follower: MjpegFollower, interval: float) -> None:
        """Send new frames, at most one per ``interval``, until the client leaves or the
        gateway stops; a Redis outage pauses the stream instead of ending it."""
        ctx = self.ctx
        loop = IOLoop.current()
        next_at = 0.0
        while not self.gone and not ctx.stopping.is_set():
            wait = next_at - time.monotonic()
            if wait > 0 and await ctx.wait_stopping(wait):
                return
            try:
                frame = await loop.run_in_executor(ctx.follow_pool, follower.next_frame,
                                                   MJPEG_BLOCK_MS)
            except REDIS_DOWN_ERRORS as exc:
                ctx.health.failed(exc)
                await ctx.wait_stopping(1.0)
                continue
            ctx.health.ok()
            if frame is None or self.gone:
                continue
            self.write(mjpeg_part(frame[1]))
            await self.flush_or_drop()
            if ctx.metrics is not None:
                ctx.metrics.mjpeg_frames.inc()
            next_at = time.monotonic() + interval
