"""``ei gateway``: the dashboard, the REST API, MJPEG viewers and the same-origin ``/ws`` proxy.

Core's Redis calls are synchronous, so every one runs in a small thread pool (never on the
event loop); snapshot annotation (JPEG decode, draw, encode) runs there too. MJPEG viewers
block in ``XREAD`` for their stream's next frame, so they get a pool of their own (a thread
per viewer at most) and never starve the API. Every error is JSON ``{"error": message}``; a
Redis outage answers 503 and the gateway keeps serving, recovering as soon as Redis answers
again (redis-py reconnects its pool by itself). Routes are described in doc/api.md.

Analysis jobs (``/api/analysis``, doc/analysis.md) are validated and recorded through
:mod:`~elastic_inference.core.jobs`; sources are checked against the media directory
(``EI_MEDIA_DIR``), the same one the ``ei analysis`` runners read.

This module is the HTTP layer only: what the handlers show comes from core (snapshots, result
history, status, jobs); here are the handlers, query-parameter parsing and what needs the
engine (drawing boxes, the built-in types), which core may not import.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import re
import time
import unicodedata
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import redis
import tornado.web
import tornado.websocket
from tornado.http1connection import HTTP1Connection
from tornado.httpclient import HTTPClientError, HTTPRequest
from tornado.httpserver import HTTPServer
from tornado.httputil import HTTPServerRequest
from tornado.ioloop import IOLoop
from tornado.iostream import StreamClosedError
from tornado.netutil import bind_sockets

from ..core import clients, keys
from ..core.broker import OutputBroker
from ..core.errors import InvalidMessage, StorageFull
from ..core.history import bucket_count, query_counts, query_results
from ..core.jobrequest import check_known_types, parse_job_request, resolve_source
from ..core.jobs import JobFrame, JobStore
from ..core.keys import check_job_id, check_stream_id
from ..core.live import MAX_FRAME_MESSAGE_BYTES, MAX_INCOMING_BYTES, WS_PATH
from ..core.metrics import GatewayMetrics
from ..core.redact import redact_url
from ..core.redisconn import REDIS_DOWN_ERRORS, error_text, forget_traceback
from ..core.registry import StreamRegistry, worker_types
from ..core.runtime import (
    LIVE_SOCKET_BUFFER,
    cap_socket_buffers,
    running,
)
from ..core.settings import GatewaySettings, parse_settings
from ..core.snapshot import (
    SNAPSHOT_SCAN,
    Snapshot,
    SnapshotFollower,
    frame_view,
    latest_by_type,
    pick_snapshot,
)
from ..core.status import collect_status
from ..engine.annotate import annotate_jpeg
from ..engine.models import INFER_TYPES

log = logging.getLogger(__name__)

T = TypeVar("T")

STATIC_DIR = Path(__file__).resolve().parent / "static"
SNAPSHOT_QUALITY = 80
REDIS_DOWN_MESSAGE = "Redis is unavailable; retry shortly"

# History queries (/results, /counts)
DEFAULT_RANGE_S = 300.0
MAX_RANGE_S = 24 * 3600.0
#: Epoch seconds beyond this are refused (year 5138): a Redis stream id must stay in range.
MAX_EPOCH_S = 1e11
DEFAULT_LIMIT = 1000
MAX_LIMIT = 10_000
MAX_LABEL_CHARS = 64
DEFAULT_STEP_S = 10.0
MIN_STEP_S, MAX_STEP_S = 1.0, 3600.0
MAX_BUCKETS = 1000

# MJPEG
DEFAULT_MJPEG_FPS = 10.0
MIN_MJPEG_FPS, MAX_MJPEG_FPS = 1.0, 30.0
#: Longest blocking XREAD of a viewer: bounds how late it notices a disconnect or shutdown.
MJPEG_BLOCK_MS = 500
MJPEG_BOUNDARY = "eiframe"
#: How long shutdown waits for viewers and proxied websockets to finish.
SHUTDOWN_WAIT_S = 3.0

# Websocket proxy
WS_CONNECT_TIMEOUT_S = 5.0
WS_PING_S = 20.0
#: Close codes a server may send on (RFC 6455 reserves 1005, 1006 and 1015 for local use).
_RELAYABLE_CLOSE = frozenset({1000, 1001, 1008, 1011, 1012, 1013, 1014})

#: Vite names files under assets/ by content hash, so they never change under one name.
IMMUTABLE = "public, max-age=31536000, immutable"

# Analysis jobs
#: Largest ``POST /api/analysis`` body; a job request is a few hundred bytes.
MAX_JOB_BODY = 16 * 1024
DEFAULT_JOBS_LIMIT, MAX_JOBS_LIMIT = 100, 1000
DEFAULT_PAGE, MAX_PAGE = 100, 1000
MAX_OFFSET = 10**9
FRAME_RE = re.compile(r"^(?:0|[1-9][0-9]{0,8})$")


def content_security_policy(websocket_url: str = "") -> str:
    """The CSP of every response: own origin only, no inline or eval'd script or style.

    ``'self'`` covers websockets to the page's own origin (the ``/ws`` proxy, or an Ingress
    routing ``/ws``); an absolute ``EI_WEBSOCKET_URL`` on another origin is added to
    ``connect-src``.
    """
    connect = "'self'"
    if websocket_url:
        parts = urlsplit(websocket_url)
        if parts.scheme in ("ws", "wss") and parts.netloc:
            connect += f" {parts.scheme}://{parts.netloc}"
    return ("default-src 'self'; script-src 'self'; style-src 'self'; "
            "img-src 'self' data: blob:; "
            f"connect-src {connect}; object-src 'none'; base-uri 'none'; "
            "frame-ancestors 'none'; form-action 'self'")


# ---------------------------------------------------------------------------------------------
# Query parameters (unit-tested without Redis)


class ParamError(ValueError):
    """An invalid query parameter; the message names it and is answered with 400."""


def parse_number(name: str, raw: str | None, default: float, low: float,
                 high: float) -> float:
    """A finite number in ``low..high``; ``default`` when absent or empty."""
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise ParamError(f"invalid {name} {raw[:40]!r}: must be a number")
    if not low <= value <= high:
        raise ParamError(f"invalid {name} {raw[:40]!r}: must be between {low:g} and {high:g}")
    return value


def parse_range(since_raw: str | None, until_raw: str | None,
                now: float) -> tuple[float, float]:
    """``(since, until)`` in epoch seconds: until defaults to now, since to 5 minutes before
    it; since must not be after until and the range must not exceed 24 hours."""
    until = parse_number("until", until_raw, now, 0.0, MAX_EPOCH_S)
    since = parse_number("since", since_raw, max(0.0, until - DEFAULT_RANGE_S), 0.0,
                         MAX_EPOCH_S)
    if since > until:
        raise ParamError(f"invalid since {since:.3f}: it is after until {until:.3f}")
    if until - since > MAX_RANGE_S:
        raise ParamError(f"invalid since {since:.3f}: the range to until ({until - since:.0f} "
                         f"s) exceeds {MAX_RANGE_S:.0f} s (24 h)")
    return since, until


def parse_int(name: str, raw: str | None, default: int, low: int, high: int) -> int:
    """An integer in ``low..high``; ``default`` when absent or empty."""
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError as exc:
        raise ParamError(f"invalid {name} {raw[:40]!r}: must be an integer") from exc
    if not low <= value <= high:
        raise ParamError(f"invalid {name} {value}: must be between {low} and {high}")
    return value


def parse_limit(raw: str | None) -> int:
    """How many results at most: an integer in 1..10000, default 1000."""
    return parse_int("limit", raw, DEFAULT_LIMIT, 1, MAX_LIMIT)


def parse_label(raw: str | None) -> str | None:
    """An optional detection label: at most 64 characters, none of them control characters."""
    if raw is None or raw == "":
        return None
    if len(raw) > MAX_LABEL_CHARS:
        raise ParamError(f"invalid label: longer than {MAX_LABEL_CHARS} characters")
    if any(unicodedata.category(c) == "Cc" for c in raw):
        raise ParamError("invalid label: contains control characters")
    return raw


def parse_step(raw: str | None, since: float, until: float) -> float:
    """Bucket width in seconds: 1..3600, default 10, and at most 1000 buckets in the range."""
    step = parse_number("step", raw, DEFAULT_STEP_S, MIN_STEP_S, MAX_STEP_S)
    n = bucket_count(since, until, step)
    if n > MAX_BUCKETS:
        raise ParamError(f"invalid step {step:g}: {n} buckets over {until - since:.0f} s; at "
                         f"most {MAX_BUCKETS} (use a step of at least "
                         f"{math.ceil((until - since) / MAX_BUCKETS)} s)")
    return step


def parse_fps(raw: str | None) -> float:
    """MJPEG frame rate cap: 1..30 frames per second, default 10."""
    return parse_number("fps", raw, DEFAULT_MJPEG_FPS, MIN_MJPEG_FPS, MAX_MJPEG_FPS)


def parse_frame_number(raw: str) -> int:
    """A frame number from a path: 0, 1, 2, ... (decimal digits, no sign, below 10^9)."""
    if not FRAME_RE.match(raw):
        raise ParamError(f"invalid frame number {raw[:40]!r}: must be a whole number "
                         f"0, 1, 2, ...")
    return int(raw)


# ---------------------------------------------------------------------------------------------
# What needs the engine (core may not import it)


def known_types(client: redis.Redis) -> set[str]:
    """The built-in inference types plus every type that has had a worker (sync)."""
    return set(INFER_TYPES) | set(worker_types(client))


def render_snapshot(snap: Snapshot) -> bytes:
    """The snapshot's JPEG with its boxes drawn (sync, CPU); ValueError if it is no JPEG."""
    if not snap.detections:
        return snap.jpeg
    return annotate_jpeg(snap.jpeg, snap.detections, SNAPSHOT_QUALITY)


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


# ---------------------------------------------------------------------------------------------
# Handlers


class RedisHealth:
    """Logs a Redis outage once and counts the recovery; touched only on the event loop."""

    def __init__(self, metrics: GatewayMetrics | None) -> None:
        self.metrics = metrics
        self.down = False

    def failed(self, exc: BaseException) -> None:
        if not self.down:
            log.warning("gateway: Redis unavailable (%s); answering 503 until it is back",
                        error_text(exc))
            self.down = True
        forget_traceback(exc)

    def ok(self) -> None:
        if self.down:
            log.info("gateway: Redis reachable again")
            self.down = False
            if self.metrics is not None:
                self.metrics.reconnects.inc()


@dataclass
class GatewayContext:
    """Everything handlers share; one per application."""

    client: redis.Redis
    executor: ThreadPoolExecutor
    metrics: GatewayMetrics | None
    websocket_url: str
    csp: str
    health: RedisHealth
    websocket_upstream: str = ""
    max_mjpeg_clients: int = 20
    max_proxy_clients: int = 200
    limits: clients.ConnectionLimits = clients.DEFAULT_LIMITS
    #: Where analysis-job sources are looked up (EI_MEDIA_DIR), as the runners do.
    media_dir: Path = Path("media")
    #: New jobs are refused while job frames take more of Redis' memory (EI_JOB_MEMORY_SHARE).
    job_memory_share: float = 0.5
    broker: OutputBroker = field(init=False)
    registry: StreamRegistry = field(init=False)
    #: Blocking reads of MJPEG viewers: one thread each at most, apart from the API's pool.
    follow_pool: ThreadPoolExecutor = field(init=False)
    mjpeg_caps: clients.ConnectionCaps = field(init=False)
    proxy_caps: clients.ConnectionCaps = field(init=False)
    proxies: set[WebsocketProxyHandler] = field(init=False, default_factory=set)
    stopping: asyncio.Event = field(init=False, default_factory=asyncio.Event)

    def __post_init__(self) -> None:
        self.broker = OutputBroker(self.client)
        self.registry = StreamRegistry(self.client)
        self.follow_pool = ThreadPoolExecutor(max_workers=self.max_mjpeg_clients,
                                              thread_name_prefix="gateway-mjpeg")
        self.mjpeg_caps = clients.ConnectionCaps("MJPEG viewers", self.max_mjpeg_clients,
                                                 self.limits.mjpeg_per_client)
        self.proxy_caps = clients.ConnectionCaps("websocket clients", self.max_proxy_clients,
                                                 self.limits.ws_per_client)

    @property
    def mjpeg_clients(self) -> int:
        return len(self.mjpeg_caps)

    def client_ip(self, request: HTTPServerRequest) -> str:
        """The client's address; forwarding headers count only from a trusted proxy."""
        return clients.client_from(request.remote_ip or "", request.headers.get_list,
                                   self.limits.trusted)

    def stream_known(self, stream: str, key: str) -> bool:
        """Whether ``stream`` is live or Redis still holds its ``key`` (sync)."""
        return stream in self.registry.ids() or bool(self.client.exists(key))

    async def wait_stopping(self, timeout: float) -> bool:
        """Sleep up to ``timeout`` seconds; True as soon as the gateway is shutting down."""
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self.stopping.wait(), timeout)
        return self.stopping.is_set()

    async def shutdown(self) -> None:
        """End MJPEG responses and proxied websockets (1001), waiting a bounded time."""
        self.stopping.set()
        for proxy in list(self.proxies):
            proxy.close(1001, "gateway shutting down")
        deadline = time.monotonic() + SHUTDOWN_WAIT_S
        while (self.mjpeg_clients or self.proxies) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        self.follow_pool.shutdown(wait=False, cancel_futures=True)


def _security_headers(handler: tornado.web.RequestHandler, csp: str) -> None:
    handler.set_header("Content-Security-Policy", csp)
    handler.set_header("X-Content-Type-Options", "nosniff")
    handler.set_header("X-Frame-Options", "DENY")
    handler.set_header("Referrer-Policy", "no-referrer")


def _write_json_error(handler: tornado.web.RequestHandler, status_code: int,
                      kwargs: dict[str, Any]) -> None:
    """Replace Tornado's HTML error page with ``{"error": message}``."""
    message = handler._reason
    exc_info = kwargs.get("exc_info")
    if exc_info is not None:
        exc = exc_info[1]
        if isinstance(exc, tornado.web.HTTPError) and exc.log_message:
            message = exc.log_message % exc.args if exc.args else exc.log_message
        elif not isinstance(exc, tornado.web.HTTPError):
            message = "internal server error"
    handler.clear_header("Content-Disposition")
    handler.set_header("Content-Type", "application/json; charset=UTF-8")
    handler.set_header("Cache-Control", "no-store")
    handler.finish(json.dumps({"error": message}))


class SecureHandler(tornado.web.RequestHandler):
    """What every handler shares: security headers and JSON errors."""

    def set_default_headers(self) -> None:
        _security_headers(self, self.application.settings["ei_csp"])

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        _write_json_error(self, status_code, kwargs)

    def log_exception(self, typ: Any, value: BaseException | None, tb: Any) -> None:
        """HTTPErrors are answers, already counted and logged per request; log only bugs."""
        if isinstance(value, tornado.web.HTTPError):
            return
        log.error("uncaught exception in %s", redact_url(self._request_summary()),
                  exc_info=value)


class BaseHandler(SecureHandler):
    """API handlers: query parameters, and Redis calls off the event loop."""

    ctx: GatewayContext

    def initialize(self, ctx: GatewayContext) -> None:
        self.ctx = ctx

    def write_json(self, data: Any, status: int = 200) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json; charset=UTF-8")
        self.set_header("Cache-Control", "no-store")
        self.finish(json.dumps(data, separators=(",", ":")))

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """Run sync ``fn`` (Redis or CPU work) in the pool; a Redis outage becomes a 503."""
        try:
            value: T = await IOLoop.current().run_in_executor(self.ctx.executor, fn, *args)
        except REDIS_DOWN_ERRORS as exc:
            self.ctx.health.failed(exc)
            raise tornado.web.HTTPError(503, REDIS_DOWN_MESSAGE) from exc
        self.ctx.health.ok()
        return value

    def stream_id(self, raw: str) -> str:
        """Validate a path id (Tornado has already percent-decoded it) or answer 400."""
        try:
            return check_stream_id(raw)
        except InvalidMessage as exc:
            raise tornado.web.HTTPError(400, "%s", str(exc)) from exc

    def query(self, name: str) -> str | None:
        """A query parameter as sent (the last one if repeated).

        Not ``get_query_argument``: it quietly turns control characters into spaces, and
        they must be seen to be refused.
        """
        values = self.request.query_arguments.get(name)
        if not values:
            return None
        try:
            return values[-1].decode("utf-8")
        except UnicodeDecodeError as exc:
            raise tornado.web.HTTPError(400, "invalid %s: not UTF-8", name) from exc

    def param(self, parse: Callable[..., T], *args: Any) -> T:
        """Apply a ``parse_*`` helper; its ParamError becomes a 400 naming the parameter."""
        try:
            return parse(*args)
        except ParamError as exc:
            raise tornado.web.HTTPError(400, "%s", str(exc)) from exc

    def job_id(self, raw: str) -> str:
        """Validate a job id from the path or answer 400."""
        try:
            return check_job_id(raw)
        except InvalidMessage as exc:
            raise tornado.web.HTTPError(400, "%s", str(exc)) from exc

    async def jobs(self, call: Callable[[JobStore], T]) -> T:
        """``call`` on a job store, in the pool; the store is built there too, so a client
        failing even as the store registers its scripts answers 503 like any Redis call."""
        return await self.run(lambda: call(JobStore(self.ctx.client)))

    async def job_or_404(self, job_id: str) -> dict[str, Any]:
        job = await self.jobs(lambda store: store.get(job_id))
        if job is None:
            raise tornado.web.HTTPError(404, "unknown analysis job %r", job_id)
        return job


class NotFoundHandler(BaseHandler):
    """Every unknown path, API or not: 404 JSON."""

    def prepare(self) -> None:
        raise tornado.web.HTTPError(404, "no such resource: %s", self.request.path)


class SecureStaticHandler(SecureHandler, tornado.web.StaticFileHandler):
    """Static files with the same security headers and JSON errors as the API."""

    async def get(self, path: str, include_body: bool = True) -> None:
        """A missing file, a directory or a path out of the root answers like any unknown
        path; a name no file can have (NUL, control characters) is a bad request."""
        if any(ord(c) < 32 or c == "\x7f" for c in path):
            raise tornado.web.HTTPError(400, "invalid path: it contains control characters")
        try:
            await super().get(path, include_body)
        except tornado.web.HTTPError as exc:
            if exc.status_code not in (403, 404):
                raise
            raise tornado.web.HTTPError(404, "no such resource: %s", self.request.path) from exc

    def set_extra_headers(self, path: str) -> None:
        if path.endswith(".html") or not path:
            self.set_header("Cache-Control", "no-cache")


class DashboardHandler(SecureStaticHandler):
    """The built SPA: hashed bundles under ``assets/`` cached for a year, the rest (above all
    index.html, which names the current bundles) revalidated on every load."""

    def set_extra_headers(self, path: str) -> None:
        self.set_header("Cache-Control", IMMUTABLE if path.startswith("assets/") else "no-cache")


class StreamsHandler(BaseHandler):
    async def get(self) -> None:
        members = await self.run(self.ctx.registry.members)
        self.write_json({"streams": [m.to_json() for m in members]})


class StreamHandler(BaseHandler):
    async def get(self, raw_id: str) -> None:
        stream = self.stream_id(raw_id)
        members = await self.run(self.ctx.registry.members)
        for member in members:
            if member.id == stream:
                self.write_json(member.to_json())
                return
        raise tornado.web.HTTPError(404, "unknown stream %r", stream)


class SnapshotHandler(BaseHandler):
    async def get(self, raw_id: str) -> None:
        stream = self.stream_id(raw_id)
        entries = await self.run(self.ctx.broker.latest, stream, SNAPSHOT_SCAN)
        snap = pick_snapshot(entries)
        if snap is None:
            raise tornado.web.HTTPError(404, "no output yet for stream %r", stream)
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
    async def get(self, raw_id: str) -> None:
        stream = self.stream_id(raw_id)
        since, until = self.time_range()
        step = self.param(parse_step, self.query("step"), since, until)
        series, found = await self.run(query_counts, self.ctx.broker, stream, since, until,
                                       step)
        await self.check_known(stream, found)
        self.write_json({"stream": stream, "since": since, "until": until, "step": step,
                         "series": series})


@tornado.web.stream_request_body
class AnalysisJobsHandler(BaseHandler):
    """``POST /api/analysis`` submits a job, ``GET /api/analysis`` lists them.

    The body is streamed in rather than buffered by Tornado, so a request over
    :data:`MAX_JOB_BODY` is refused without being held in memory.
    """

    body: bytearray
    too_large: bool

    def prepare(self) -> None:
        self.body = bytearray()
        self.too_large = False
        length = self.request.headers.get("Content-Length", "")
        if length.isdigit() and int(length) > MAX_JOB_BODY:
            raise tornado.web.HTTPError(413, "the body is larger than %d bytes", MAX_JOB_BODY)

    def data_received(self, chunk: bytes) -> None:
        if self.too_large or len(self.body) + len(chunk) > MAX_JOB_BODY:
            self.too_large = True  # a chunked body: keep reading, stop keeping
            self.body.clear()
        else:
            self.body += chunk

    async def get(self) -> None:
        limit = self.param(parse_int, "limit", self.query("limit"), DEFAULT_JOBS_LIMIT, 1,
                           MAX_JOBS_LIMIT)
        self.write_json({"jobs": await self.jobs(lambda store: store.recent(limit))})

    async def post(self) -> None:
        if self.too_large:
            raise tornado.web.HTTPError(413, "the body is larger than %d bytes", MAX_JOB_BODY)
        media_type = self.request.headers.get("Content-Type", "").split(";")[0].strip().lower()
        if media_type != "application/json":
            # Also keeps other sites' pages out: a cross-origin JSON POST needs a CORS
            # preflight, which the gateway never grants.
            raise tornado.web.HTTPError(415, "send the job as JSON with Content-Type: "
                                             "application/json")
        try:
            request = parse_job_request(bytes(self.body))
            check_known_types(request.types, await self.run(known_types, self.ctx.client))
            # On the pool: the media directory may be a network volume.
            await self.run(resolve_source, request.source, self.ctx.media_dir)
        except InvalidMessage as exc:
            raise tornado.web.HTTPError(400, "%s", str(exc)) from exc
        try:
            await self.jobs(lambda store: store.check_room(self.ctx.job_memory_share))
        except StorageFull as exc:
            raise tornado.web.HTTPError(503, "%s", str(exc)) from exc
        job = await self.jobs(lambda store: store.get(store.create(request)))
        if job is None:  # only a DELETE racing the creation gets here
            raise tornado.web.HTTPError(404, "the new job was deleted at once")
        log.info("analysis job %s: %s, types %s, every %d frame(s)", job["id"], job["source"],
                 ",".join(job["types"]), job["frame_step"])
        self.set_header("Location", f"/api/analysis/{job['id']}")
        self.write_json(job, 201)


class AnalysisJobHandler(BaseHandler):
    async def get(self, raw_id: str) -> None:
        self.write_json(await self.job_or_404(self.job_id(raw_id)))

    async def delete(self, raw_id: str) -> None:
        job_id = self.job_id(raw_id)
        if not await self.jobs(lambda store: store.delete(job_id)):
            raise tornado.web.HTTPError(404, "unknown analysis job %r", job_id)
        log.info("analysis job %s deleted", job_id)
        self.set_status(204)
        self.finish()


class AnalysisResultsHandler(BaseHandler):
    async def get(self, raw_id: str) -> None:
        job_id = self.job_id(raw_id)
        offset = self.param(parse_int, "offset", self.query("offset"), 0, 0, MAX_OFFSET)
        limit = self.param(parse_int, "limit", self.query("limit"), DEFAULT_PAGE, 1, MAX_PAGE)
        page = await self.jobs(lambda store: store.results_page(job_id, offset, limit))
        if page is None:
            raise tornado.web.HTTPError(404, "unknown analysis job %r", job_id)
        self.write_json(page)


class AnalysisFrameHandler(BaseHandler):
    """Shared by the frame image and the frame results."""

    async def frame(self, raw_id: str, raw_frame: str, jpeg: bool) -> tuple[str, int, JobFrame]:
        job_id = self.job_id(raw_id)
        frame = self.param(parse_frame_number, raw_frame)
        found = await self.jobs(lambda store: store.read_frame(job_id, frame, jpeg))
        if found.job is None:
            raise tornado.web.HTTPError(404, "unknown analysis job %r", job_id)
        if not found.stored:
            step = found.job["frame_step"]
            raise tornado.web.HTTPError(
                404, "frame %d of job %r is not stored: the job keeps frames 0, %d, %d, ... "
                "of its video, as they are read", frame, job_id, step, 2 * step)
        return job_id, frame, found


class AnalysisFrameImageHandler(AnalysisFrameHandler):
    async def get(self, raw_id: str, raw_frame: str) -> None:
        job_id, frame, found = await self.frame(raw_id, raw_frame, jpeg=True)
        assert found.jpeg is not None
        snap, _ = frame_view(frame, found.jpeg, found.results)
        try:
            body = await self.run(render_snapshot, snap)
        except ValueError as exc:
            log.warning("job %s frame %d: cannot annotate: %s", job_id, frame, exc)
            raise tornado.web.HTTPError(502, "frame %d of job %r is not a decodable JPEG",
                                        frame, job_id) from exc
        self.set_header("Content-Type", "image/jpeg")
        self.set_header("Cache-Control", "no-store")
        self.set_header("X-EI-Frame", str(frame))
        self.finish(body)


class AnalysisFrameResultsHandler(AnalysisFrameHandler):
    async def get(self, raw_id: str, raw_frame: str) -> None:
        job_id, frame, found = await self.frame(raw_id, raw_frame, jpeg=False)
        _, results = frame_view(frame, b"", found.results)
        self.write_json({"id": job_id, "frame": frame, "results": results})


class MjpegHandler(BaseHandler):
    """The newest annotated frame of a stream, pushed as ``multipart/x-mixed-replace``.

    Viewable in an ``<img>``, a browser tab, ffplay or VLC. Each part is rendered only once
    the previous one has been flushed to the client, from the newest frame at that moment:
    a slow client gets fewer frames, never a backlog.
    """

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


class WebsocketProxyHandler(SecureHandler, tornado.websocket.WebSocketHandler):
    """``/ws`` on the gateway's origin: relays the websocket service, both ways, unchanged.

    Each direction awaits its write before reading the next message, so nothing queues here:
    a slow browser holds back the upstream connection, and the websocket service's per-client
    mailbox (newest frame per stream and type) decides what is skipped.
    """

    ctx: GatewayContext
    upstream: tornado.websocket.WebSocketClientConnection | None
    relay: asyncio.Task[None] | None

    def initialize(self, ctx: GatewayContext) -> None:
        self.ctx = ctx
        self.upstream = None
        self.relay = None
        self.client = ""

    @property
    def max_message_size(self) -> int:
        return MAX_INCOMING_BYTES

    async def get(self, *args: Any, **kwargs: Any) -> None:
        if self.request.headers.get("Upgrade", "").lower() != "websocket":
            raise tornado.web.HTTPError(400, "%s is a websocket endpoint (Upgrade: websocket)",
                                        WS_PATH)
        await super().get(*args, **kwargs)

    async def open(self, *args: str, **kwargs: str) -> None:
        """Connect upstream (the browser's messages wait until this returns)."""
        ctx = self.ctx
        ip = ctx.client_ip(self.request)
        refused = ctx.proxy_caps.admit(clients.client_key(ip))
        if refused is not None:
            log.warning("ws proxy: refusing %s: %s", ip, refused.message)
            # 1008: this client holds enough already; 1013: the gateway is full, try later.
            self.close(1008 if refused.per_client else 1013, refused.message)
            return
        self.client = clients.client_key(ip)
        ctx.proxies.add(self)
        try:
            # The websocket service caps per client too: it must see the browser's address.
            upstream = await tornado.websocket.websocket_connect(
                HTTPRequest(ctx.websocket_upstream, headers={"X-Forwarded-For": ip},
                            connect_timeout=WS_CONNECT_TIMEOUT_S),
                max_message_size=MAX_FRAME_MESSAGE_BYTES)
        except (OSError, HTTPClientError, StreamClosedError,
                tornado.websocket.WebSocketError, asyncio.TimeoutError) as exc:
            log.warning("ws proxy: websocket service %s unreachable: %s",
                        ctx.websocket_upstream, exc)
            self.close(1013, "websocket service unavailable")
            return
        if self not in ctx.proxies:  # the browser left (or shutdown began) meanwhile
            upstream.close(1000)
            return
        self.upstream = upstream
        # Small buffers on both hops, so a slow browser holds back the websocket service (whose
        # mailbox then skips to the newest frame) instead of megabytes of stale frames.
        up = upstream.protocol.stream if upstream.protocol is not None else None
        down = self.ws_connection.stream if self.ws_connection is not None else None
        if up is not None:
            cap_socket_buffers(up.socket, recv=LIVE_SOCKET_BUFFER)
        if down is not None:
            cap_socket_buffers(down.socket, send=LIVE_SOCKET_BUFFER)
        self.relay = asyncio.create_task(self._relay_down(upstream))

    async def _relay_down(self, upstream: tornado.websocket.WebSocketClientConnection) -> None:
        """Websocket service -> browser until either side closes."""
        def write(message: str | bytes) -> Awaitable[None]:
            return self.write_message(message, binary=isinstance(message, bytes))

        send = clients.bounded_send(
            write, self.ctx.limits.write_timeout,
            lambda: self.close(1008, "write timeout: the client does not read"), self.client)
        while (message := await upstream.read_message()) is not None:
            try:
                await send(message)
            except tornado.websocket.WebSocketClosedError:
                return  # the browser left, or was dropped by the write timeout
        code = upstream.close_code
        self.close(code if code in _RELAYABLE_CLOSE else 1013,
                   upstream.close_reason or "websocket service closed the connection")

    async def on_message(self, message: str | bytes) -> None:
        """Browser -> websocket service (subscriptions), one at a time."""
        if self.upstream is None:
            return
        try:
            await self.upstream.write_message(message, binary=isinstance(message, bytes))
        except tornado.websocket.WebSocketClosedError:
            self.close(1013, "websocket service closed the connection")

    def on_close(self) -> None:
        if self.client:
            self.ctx.proxy_caps.release(self.client)
            self.client = ""
        self.ctx.proxies.discard(self)
        if self.upstream is not None:
            self.upstream.close(1000)
        if self.relay is not None:
            self.relay.cancel()


class StatusHandler(BaseHandler):
    async def get(self) -> None:
        self.write_json(await self.run(collect_status, self.ctx.client))


class ConfigHandler(BaseHandler):
    """What a browser page needs to know about its deployment (the websocket URL)."""

    def get(self) -> None:
        self.write_json({"websocket_url": self.ctx.websocket_url or None})


class HealthHandler(BaseHandler):
    def get(self) -> None:
        self.write_json({"status": "ok"})


class ReadyHandler(BaseHandler):
    async def get(self) -> None:
        await self.run(self.ctx.client.ping)
        self.write_json({"status": "ready"})


class GatewayApp(tornado.web.Application):
    """Counts every request by handler and status; access log at debug for successes."""

    def log_request(self, handler: tornado.web.RequestHandler) -> None:
        status = handler.get_status()
        name = type(handler).__name__
        metrics: GatewayMetrics | None = self.settings.get("ei_metrics")
        if metrics is not None:
            metrics.requests.labels(name, str(status)).inc()
        level = logging.DEBUG if status < 400 else logging.INFO if status < 500 else \
            logging.WARNING
        if log.isEnabledFor(level):
            log.log(level, "%d %s %.1fms", status, redact_url(handler._request_summary()),
                    1000.0 * handler.request.request_time())


def dashboard_dir(spa_dir: Path | None) -> Path | None:
    """``spa_dir`` when it holds a built dashboard (index.html), else None (logged once)."""
    if spa_dir is None:
        return None
    if (spa_dir / "index.html").is_file():
        log.info("gateway: serving the dashboard from %s", spa_dir)
        return spa_dir
    log.warning("gateway: the dashboard is not built (no %s); / serves the plain page. "
                "`make spa` or `make demo` builds it", spa_dir / "index.html")
    return None


def make_app(client: redis.Redis, *, metrics: GatewayMetrics | None = None,
             executor: ThreadPoolExecutor | None = None, websocket_url: str = "",
             websocket_upstream: str = "", spa_dir: Path | None = None,
             max_mjpeg_clients: int = 20, max_proxy_clients: int = 200,
             limits: clients.ConnectionLimits = clients.DEFAULT_LIMITS,
             static_path: Path = STATIC_DIR, media_dir: Path = Path("media"),
             job_memory_share: float = 0.5) -> GatewayApp:
    """Build the Tornado application; tests pass their own client, pool and metrics.

    ``spa_dir`` is the built dashboard (``None``: the plain page only); an empty
    ``websocket_upstream`` leaves ``/ws`` unrouted (404); ``media_dir`` is where analysis-job
    sources are checked.
    """
    if executor is None:
        executor = ThreadPoolExecutor(max_workers=4, thread_name_prefix="gateway-redis")
    csp = content_security_policy(websocket_url)
    ctx = GatewayContext(client=client, executor=executor, metrics=metrics,
                         websocket_url=websocket_url, csp=csp, health=RedisHealth(metrics),
                         websocket_upstream=websocket_upstream,
                         max_mjpeg_clients=max_mjpeg_clients,
                         max_proxy_clients=max_proxy_clients, limits=limits,
                         media_dir=media_dir, job_memory_share=job_memory_share)
    args = {"ctx": ctx}
    sid = r"([^/]+)"
    dashboard = dashboard_dir(spa_dir)
    # A StaticFileHandler needs a path group; "/" maps to "" and so to index.html.
    index: Any = ((r"/()", DashboardHandler, {"path": str(dashboard),
                                              "default_filename": "index.html"})
                  if dashboard is not None else
                  (r"/()", SecureStaticHandler, {"path": str(static_path),
                                                 "default_filename": "index.html"}))
    routes: list[Any] = [
        index,
        (r"/static/(.*)", SecureStaticHandler, {"path": str(static_path)}),
        (r"/healthz", HealthHandler, args),
        (r"/readyz", ReadyHandler, args),
        (r"/api/streams", StreamsHandler, args),
        (rf"/api/streams/{sid}", StreamHandler, args),
        (rf"/api/streams/{sid}/snapshot\.jpg", SnapshotHandler, args),
        (rf"/api/streams/{sid}/latest", LatestHandler, args),
        (rf"/api/streams/{sid}/results", ResultsHandler, args),
        (rf"/api/streams/{sid}/counts", CountsHandler, args),
        (rf"/api/streams/{sid}/mjpeg", MjpegHandler, args),
        (r"/api/analysis", AnalysisJobsHandler, args),
        (rf"/api/analysis/{sid}", AnalysisJobHandler, args),
        (rf"/api/analysis/{sid}/results", AnalysisResultsHandler, args),
        (rf"/api/analysis/{sid}/frames/{sid}\.jpg", AnalysisFrameImageHandler, args),
        (rf"/api/analysis/{sid}/frames/{sid}/results", AnalysisFrameResultsHandler, args),
        (r"/api/status", StatusHandler, args),
        (r"/api/config", ConfigHandler, args),
    ]
    if websocket_upstream:
        routes.append((WS_PATH, WebsocketProxyHandler, args))
    if dashboard is not None:
        # Any other file of the build (favicon, images), except under /api/.
        routes.append((r"/(?!api(?:/|$))(.+)", DashboardHandler, {"path": str(dashboard)}))
    return GatewayApp(
        routes,
        default_handler_class=NotFoundHandler,
        default_handler_args=args,
        websocket_ping_interval=WS_PING_S,
        websocket_ping_timeout=WS_PING_S,
        ei_csp=csp,
        ei_metrics=metrics,
        ei_context=ctx,
        compress_response=False,
    )


async def serve(app: GatewayApp, host: str, port: int, stop: Callable[[], bool],
                started: Callable[[int], None] | None = None) -> None:
    """Serve ``app`` until ``stop()`` is true, then end streams and close connections
    (bounded waits)."""
    sockets = bind_sockets(port, host)
    limits: clients.ConnectionLimits = app.settings["ei_context"].limits
    server = HTTPServer(app, idle_connection_timeout=limits.header_timeout,
                        body_timeout=limits.body_timeout)
    server.add_sockets(sockets)
    bound = int(sockets[0].getsockname()[1])
    log.info("gateway on http://%s:%d/", host, bound)
    if started is not None:
        started(bound)
    try:
        while not stop():
            # The stop event is a threading.Event set by a signal handler; polling is the
            # simplest bridge into the loop.
            await asyncio.sleep(0.1)
    finally:
        server.stop()
        ctx: GatewayContext = app.settings["ei_context"]
        await ctx.shutdown()
        try:
            await asyncio.wait_for(server.close_all_connections(), 5.0)
        except asyncio.TimeoutError:
            log.warning("gateway: some connections did not close within 5 s")


def main(argv: list[str]) -> int:
    """``ei gateway``: parse settings, serve until SIGTERM/SIGINT, exit 0."""
    settings = parse_settings(GatewaySettings, argv, prog="ei gateway")
    with running("gateway", settings) as (runtime, client):
        if settings.websocket_upstream:
            log.info("gateway: proxying %s to %s", WS_PATH, settings.websocket_upstream)
        if settings.media_dir.is_dir():
            log.info("gateway: analysis-job sources from %s", settings.media_dir)
        else:
            log.warning("gateway: the media directory %s does not exist: analysis jobs can "
                        "read URLs only (EI_MEDIA_DIR)", settings.media_dir)
        executor = ThreadPoolExecutor(max_workers=4, thread_name_prefix="gateway-redis")
        app = make_app(client, metrics=GatewayMetrics(runtime.registry), executor=executor,
                       websocket_url=settings.websocket_url,
                       websocket_upstream=settings.websocket_upstream,
                       spa_dir=settings.spa_dir, max_mjpeg_clients=settings.max_mjpeg_clients,
                       max_proxy_clients=settings.max_proxy_clients,
                       media_dir=settings.media_dir,
                       job_memory_share=settings.job_memory_share,
                       limits=settings.connection_limits())
        try:
            asyncio.run(serve(app, settings.host, settings.port, runtime.stop.is_set,
                              started=lambda _port: runtime.ready.set()))
        finally:
            executor.shutdown(wait=False, cancel_futures=True)
    log.info("gateway: stopped")
    return runtime.exit_code
