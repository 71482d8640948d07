"""``ei gateway``: the REST API and the first HTML page, served by Tornado.

Core's Redis calls are synchronous, so every one runs in a small thread pool (never on the
event loop); snapshot annotation (JPEG decode, draw, encode) runs there too. Every error is JSON
``{"error": message}``; a Redis outage answers 503 and the gateway keeps serving, recovering
as soon as Redis answers again (redis-py reconnects its pool by itself). Routes are described in
doc/api.md.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import redis
import tornado.web
from tornado.httpserver import HTTPServer
from tornado.ioloop import IOLoop
from tornado.netutil import bind_sockets

from ..core.broker import OutputBroker, OutputEntry
from ..core.errors import InvalidMessage
from ..core.keys import TYPE_RE, check_stream_id
from ..core.metrics import GatewayMetrics
from ..core.queue import FrameQueue
from ..core.redisconn import REDIS_DOWN_ERRORS, connect, redact_url
from ..core.registry import Member, StreamRegistry, WorkerRegistry, worker_types
from ..core.result import Detection, Result, decode_result
from ..core.runtime import ServiceRuntime, setup_logging
from ..core.settings import GatewaySettings, parse_settings
from ..engine.annotate import annotate_jpeg

log = logging.getLogger(__name__)

T = TypeVar("T")

STATIC_DIR = Path(__file__).resolve().parent / "static"
#: Entries of ``ei:out:{stream}`` examined for a snapshot: enough to hold every type's result
#: for the newest frame when several types publish interleaved.
SNAPSHOT_SCAN = 8
SNAPSHOT_QUALITY = 80
REDIS_DOWN_MESSAGE = "Redis is unavailable; retry shortly"


def content_security_policy(websocket_url: str = "") -> str:
    """The CSP of every response: own origin only, no inline or eval'd script.

    The websocket server runs on another port (another origin), so its origin is allowed for
    ``connect-src`` when configured.
    """
    connect = "'self'"
    if websocket_url:
        parts = urlsplit(websocket_url)
        if parts.scheme in ("ws", "wss") and parts.netloc:
            connect += f" {parts.scheme}://{parts.netloc}"
    return ("default-src 'self'; img-src 'self' data: blob:; "
            f"connect-src {connect}; object-src 'none'; base-uri 'none'; "
            "frame-ancestors 'none'; form-action 'self'")


# ---------------------------------------------------------------------------------------------
# Pure helpers (unit-tested without Redis)


def stream_json(member: Member) -> dict[str, Any]:
    """A registry member as the API shows it: its details plus ``id`` and ``last_seen``."""
    return {**member.info, "id": member.id, "last_seen": member.last_seen}


@dataclass(frozen=True)
class Snapshot:
    """The frame to show for a stream and every type's detections for that same frame."""

    seq: int
    jpeg: bytes
    detections: tuple[Detection, ...]
    types: tuple[str, ...]


def _valid(entries: Sequence[OutputEntry]) -> list[tuple[OutputEntry, Result, dict[str, Any]]]:
    """(entry, Result, raw JSON) for entries whose result validates; others are skipped."""
    out = []
    for entry in entries:
        try:
            result = decode_result(entry.result)
        except InvalidMessage as exc:
            log.debug("skipping entry %s of %s: %s", entry.entry_id, entry.stream, exc)
            continue
        out.append((entry, result, json.loads(entry.result)))
    return out


def pick_snapshot(entries: Sequence[OutputEntry]) -> Snapshot | None:
    """Newest seq among ``entries`` (newest first) with all types' detections for it merged.

    One frame is pushed to every type of its stream, so results with the same seq describe
    the same picture; their boxes belong on one image. Without a valid result the newest
    frame is shown bare; with no entries at all there is nothing to show.
    """
    if not entries:
        return None
    valid = _valid(entries)
    if not valid:
        return Snapshot(seq=-1, jpeg=entries[0].jpeg, detections=(), types=())
    seq = max(r.seq for _, r, _ in valid)
    same = [(e, r) for e, r, _ in valid if r.seq == seq]
    seen: set[str] = set()
    detections: list[Detection] = []
    for _, r in same:  # newest first: a type that published twice counts once
        if r.type not in seen:
            seen.add(r.type)
            detections.extend(r.detections)
    jpeg = next((e.jpeg for e, _ in same if e.jpeg), entries[0].jpeg)
    return Snapshot(seq=seq, jpeg=jpeg, detections=tuple(detections), types=tuple(sorted(seen)))


def latest_by_type(entries: Sequence[OutputEntry]) -> dict[str, dict[str, Any]]:
    """The newest valid result JSON object of each type among ``entries`` (newest first)."""
    out: dict[str, dict[str, Any]] = {}
    for _, result, raw in _valid(entries):
        out.setdefault(result.type, raw)
    return dict(sorted(out.items()))


def collect_status(client: redis.Redis) -> dict[str, Any]:
    """Queues, drops and workers per inference type, plus the live stream count (sync).

    Types are those that ever had a worker plus those live streams feed, so a type whose
    frames pile up with no worker at all still shows.
    """
    streams = StreamRegistry(client).members()
    types = set(worker_types(client))
    for member in streams:
        declared = member.info.get("types")
        if isinstance(declared, list):
            types.update(t for t in declared if isinstance(t, str) and TYPE_RE.match(t))
    rows = []
    for infer_type in sorted(types):
        stats = FrameQueue(client, infer_type).stats()
        workers = WorkerRegistry(client, infer_type).members()
        rows.append({
            "type": infer_type,
            "queue": {"length": stats.length, "pushed": stats.pushed,
                      "dropped": stats.dropped, "drops": stats.drops},
            "workers": [{**w.info, "id": w.id, "last_seen": w.last_seen} for w in workers],
        })
    return {"streams": len(streams), "types": rows}


# ---------------------------------------------------------------------------------------------
# Handlers


class RedisHealth:
    """Logs a Redis outage once and counts the recovery; touched only on the event loop."""

    def __init__(self, metrics: GatewayMetrics | None) -> None:
        self.metrics = metrics
        self.down = False

    def failed(self, exc: BaseException) -> None:
        if not self.down:
            log.warning("gateway: Redis unavailable (%s); answering 503 until it is back", exc)
            self.down = True

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
    broker: OutputBroker = field(init=False)
    registry: StreamRegistry = field(init=False)

    def __post_init__(self) -> None:
        self.broker = OutputBroker(self.client)
        self.registry = StreamRegistry(self.client)


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


class BaseHandler(tornado.web.RequestHandler):
    """Security headers, JSON errors and Redis calls off the event loop."""

    ctx: GatewayContext

    def initialize(self, ctx: GatewayContext) -> None:
        self.ctx = ctx

    def set_default_headers(self) -> None:
        _security_headers(self, self.application.settings["ei_csp"])

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        _write_json_error(self, status_code, kwargs)

    def log_exception(self, typ: Any, value: BaseException | None, tb: Any) -> None:
        """HTTPErrors are answers, already counted and logged per request; log only bugs."""
        if isinstance(value, tornado.web.HTTPError):
            return
        log.error("uncaught exception in %s", self._request_summary(), exc_info=value)

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


class NotFoundHandler(BaseHandler):
    """Every unknown path, API or not: 404 JSON."""

    def prepare(self) -> None:
        raise tornado.web.HTTPError(404, "no such resource: %s", self.request.path)


class SecureStaticHandler(tornado.web.StaticFileHandler):
    """Static files with the same security headers and JSON errors as the API."""

    def set_default_headers(self) -> None:
        _security_headers(self, self.application.settings["ei_csp"])

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        _write_json_error(self, status_code, kwargs)

    def set_extra_headers(self, path: str) -> None:
        if path.endswith(".html") or not path:
            self.set_header("Cache-Control", "no-cache")


class StreamsHandler(BaseHandler):
    async def get(self) -> None:
        members = await self.run(self.ctx.registry.members)
        self.write_json({"streams": [stream_json(m) for m in members]})


class StreamHandler(BaseHandler):
    async def get(self, raw_id: str) -> None:
        stream = self.stream_id(raw_id)
        members = await self.run(self.ctx.registry.members)
        for member in members:
            if member.id == stream:
                self.write_json(stream_json(member))
                return
        raise tornado.web.HTTPError(404, "unknown stream %r", stream)


class SnapshotHandler(BaseHandler):
    async def get(self, raw_id: str) -> None:
        stream = self.stream_id(raw_id)
        entries = await self.run(self.ctx.broker.latest, stream, SNAPSHOT_SCAN)
        snap = pick_snapshot(entries)
        if snap is None:
            raise tornado.web.HTTPError(404, "no output yet for stream %r", stream)
        body = snap.jpeg
        if snap.detections:
            try:
                body = await self.run(annotate_jpeg, snap.jpeg, snap.detections,
                                      SNAPSHOT_QUALITY)
            except ValueError as exc:
                log.warning("snapshot of %s: cannot annotate frame seq %d: %s", stream,
                            snap.seq, exc)
                raise tornado.web.HTTPError(502, "the latest frame of %r is not a decodable "
                                            "JPEG", stream) from exc
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
            log.log(level, "%d %s %.1fms", status, handler._request_summary(),
                    1000.0 * handler.request.request_time())


def make_app(client: redis.Redis, *, metrics: GatewayMetrics | None = None,
             executor: ThreadPoolExecutor | None = None, websocket_url: str = "",
             static_path: Path = STATIC_DIR) -> GatewayApp:
    """Build the Tornado application; tests pass their own client, pool and metrics."""
    if executor is None:
        executor = ThreadPoolExecutor(max_workers=4, thread_name_prefix="gateway-redis")
    csp = content_security_policy(websocket_url)
    ctx = GatewayContext(client=client, executor=executor, metrics=metrics,
                         websocket_url=websocket_url, csp=csp, health=RedisHealth(metrics))
    args = {"ctx": ctx}
    sid = r"([^/]+)"
    routes: list[Any] = [
        # A StaticFileHandler needs a path group; "/" maps to "" and so to index.html.
        (r"/()", SecureStaticHandler, {"path": str(static_path),
                                       "default_filename": "index.html"}),
        (r"/healthz", HealthHandler, args),
        (r"/readyz", ReadyHandler, args),
        (r"/api/streams", StreamsHandler, args),
        (rf"/api/streams/{sid}", StreamHandler, args),
        (rf"/api/streams/{sid}/snapshot\.jpg", SnapshotHandler, args),
        (rf"/api/streams/{sid}/latest", LatestHandler, args),
        (r"/api/status", StatusHandler, args),
        (r"/api/config", ConfigHandler, args),
    ]
    return GatewayApp(
        routes,
        static_path=str(static_path),
        static_handler_class=SecureStaticHandler,
        default_handler_class=NotFoundHandler,
        default_handler_args=args,
        ei_csp=csp,
        ei_metrics=metrics,
        ei_context=ctx,
        compress_response=False,
    )


async def serve(app: GatewayApp, host: str, port: int, stop: Callable[[], bool],
                started: Callable[[int], None] | None = None) -> None:
    """Serve ``app`` until ``stop()`` is true, then close connections (bounded wait)."""
    sockets = bind_sockets(port, host)
    server = HTTPServer(app)
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
        try:
            await asyncio.wait_for(server.close_all_connections(), 5.0)
        except asyncio.TimeoutError:
            log.warning("gateway: some connections did not close within 5 s")


def main(argv: list[str]) -> int:
    """``ei gateway``: parse settings, serve until SIGTERM/SIGINT, exit 0."""
    settings = parse_settings(GatewaySettings, argv, prog="ei gateway")
    setup_logging(settings.log_level)
    runtime = ServiceRuntime("gateway")
    runtime.install_signal_handlers()
    metrics = GatewayMetrics(runtime.registry)
    runtime.serve_health(settings.metrics_host, settings.metrics_port)
    client = connect(settings.redis_url)
    log.info("gateway: Redis at %s", redact_url(settings.redis_url))
    executor = ThreadPoolExecutor(max_workers=4, thread_name_prefix="gateway-redis")
    app = make_app(client, metrics=metrics, executor=executor,
                   websocket_url=settings.websocket_url)

    try:
        asyncio.run(serve(app, settings.host, settings.port, runtime.stop.is_set,
                          started=lambda _port: runtime.ready.set()))
    finally:
        executor.shutdown(wait=False, cancel_futures=True)
        runtime.close()
        client.close()
    log.info("gateway: stopped")
    return 0
