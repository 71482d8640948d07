"""Routing: the application built from its handlers, and the server loop."""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from tornado.httpserver import HTTPServer
from tornado.netutil import bind_sockets

from ...core import clients
from ...core.access import Gatekeeper
from ...core.hosts import HostPolicy
from ...core.live import WS_PATH
from ...core.metrics import GatewayMetrics
from ...core.netguard import NO_URLS, SourcePolicy
from ...core.ratelimit import Rate
from ...core.redisconn import RedisClient
from .account import LoginHandler, LogoutHandler, MeHandler, SignedUrlHandler, UsersHandler
from .analysis import (
    AnalysisFrameImageHandler,
    AnalysisFrameResultsHandler,
    AnalysisJobHandler,
    AnalysisJobsHandler,
    AnalysisResultsHandler,
)
from .base import (
    DashboardHandler,
    HostRefusedHandler,
    NotFoundHandler,
    SecureStaticHandler,
    content_security_policy,
)
from .context import GatewayApp, GatewayContext, RedisHealth
from .events import EventsHandler, EventSnapshotHandler, RuleCountsHandler
from .mjpeg import MjpegHandler
from .relay import WS_PING_S, WebsocketProxyHandler
from .rules import RulesHandler
from .sources import SourceHandler, SourcesHandler
from .streams import (
    ConfigHandler,
    CountsHandler,
    HealthHandler,
    LatestHandler,
    ReadyHandler,
    ResultsHandler,
    SnapshotHandler,
    StatusHandler,
    StreamHandler,
    StreamsHandler,
)

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).resolve().parent / "static"



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


def make_app(client: RedisClient, *, gatekeeper: Gatekeeper, metrics: GatewayMetrics | None = None,
             executor: ThreadPoolExecutor | None = None, websocket_url: str = "",
             websocket_upstream: str = "", spa_dir: Path | None = None,
             max_mjpeg_clients: int = 20, max_proxy_clients: int = 200,
             limits: clients.ConnectionLimits = clients.DEFAULT_LIMITS,
             static_path: Path = STATIC_DIR, media_dir: Path = Path("media"),
             job_memory_share: float = 0.5,
             source_policy: SourcePolicy = NO_URLS,
             hosts: HostPolicy | None = None, job_rate: Rate | None = None,
             list_rate: Rate | None = None, tls: bool = False,
             session_ttl: int = 43200) -> GatewayApp:
    """Build the Tornado application; tests pass their own client, pool and metrics.

    ``spa_dir`` is the built dashboard (``None``: the plain page only); an empty
    ``websocket_upstream`` leaves ``/ws`` unrouted (404); ``media_dir`` is where the sources of
    analysis jobs and of ``/api/sources`` are checked; ``hosts`` the allowed Host and Origin
    headers (default: loopback);
    ``tls`` tells handlers the server speaks HTTPS (``serve`` with an SSL context);
    ``gatekeeper`` checks every route's credentials (doc/security.md).
    """
    if executor is None:
        executor = ThreadPoolExecutor(max_workers=4, thread_name_prefix="gateway-redis")
    csp = content_security_policy(websocket_url)
    ctx = GatewayContext(client=client, executor=executor, gatekeeper=gatekeeper,
                         metrics=metrics,
                         websocket_url=websocket_url, csp=csp, health=RedisHealth(metrics),
                         websocket_upstream=websocket_upstream,
                         max_mjpeg_clients=max_mjpeg_clients,
                         max_proxy_clients=max_proxy_clients, limits=limits,
                         media_dir=media_dir, job_memory_share=job_memory_share,
                         source_policy=source_policy,
                         hosts=hosts if hosts is not None else HostPolicy.build(()),
                         job_rate=job_rate, list_rate=list_rate, tls=tls,
                         session_ttl=session_ttl)
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
        (r"/healthz", HealthHandler),
        (r"/readyz", ReadyHandler),
        (r"/api/streams", StreamsHandler),
        (rf"/api/streams/{sid}", StreamHandler),
        (rf"/api/streams/{sid}/snapshot\.jpg", SnapshotHandler),
        (rf"/api/streams/{sid}/latest", LatestHandler),
        (rf"/api/streams/{sid}/results", ResultsHandler),
        (rf"/api/streams/{sid}/counts", CountsHandler),
        (rf"/api/streams/{sid}/mjpeg", MjpegHandler),
        (rf"/api/streams/{sid}/rules", RulesHandler),
        (rf"/api/streams/{sid}/rules/counts", RuleCountsHandler),
        (r"/api/events", EventsHandler),
        (rf"/api/events/{sid}/snapshot", EventSnapshotHandler),
        (r"/api/sources", SourcesHandler),
        (rf"/api/sources/{sid}", SourceHandler),
        (r"/api/analysis", AnalysisJobsHandler),
        (rf"/api/analysis/{sid}", AnalysisJobHandler),
        (rf"/api/analysis/{sid}/results", AnalysisResultsHandler),
        (rf"/api/analysis/{sid}/frames/{sid}\.jpg", AnalysisFrameImageHandler),
        (rf"/api/analysis/{sid}/frames/{sid}/results", AnalysisFrameResultsHandler),
        (r"/api/status", StatusHandler),
        (r"/api/config", ConfigHandler),
        (r"/api/login", LoginHandler),
        (r"/api/logout", LogoutHandler),
        (r"/api/me", MeHandler),
        (r"/api/signed-url", SignedUrlHandler),
        (r"/api/users", UsersHandler),
    ]
    if websocket_upstream:
        routes.append((WS_PATH, WebsocketProxyHandler))
    if dashboard is not None:
        # Any other file of the build (favicon, images), except under /api/.
        routes.append((r"/(?!api(?:/|$))(.+)", DashboardHandler, {"path": str(dashboard)}))
    return GatewayApp(
        ctx,
        routes,
        HostRefusedHandler,
        default_handler_class=NotFoundHandler,
        websocket_ping_interval=WS_PING_S,
        websocket_ping_timeout=WS_PING_S,
        compress_response=False,
    )


async def serve(app: GatewayApp, host: str, port: int, stop: Callable[[], bool],
                started: Callable[[int], None] | None = None,
                ssl_context: ssl.SSLContext | None = None) -> None:
    """Serve ``app`` until ``stop()`` is true, then end streams and close connections
    (bounded waits). With ``ssl_context`` the port speaks HTTPS only (core.tls)."""
    sockets = bind_sockets(port, host)
    limits = app.ctx.limits
    server = HTTPServer(app, idle_connection_timeout=limits.header_timeout,
                        body_timeout=limits.body_timeout, ssl_options=ssl_context)
    server.add_sockets(sockets)
    bound = int(sockets[0].getsockname()[1])
    log.info("gateway on %s://%s:%d/", "https" if ssl_context else "http", host, bound)
    if started is not None:
        started(bound)
    try:
        while not stop():
            # The stop event is a threading.Event set by a signal handler; polling is the
            # simplest bridge into the loop.
            await asyncio.sleep(0.1)
    finally:
        server.stop()
        await app.ctx.shutdown()
        try:
            await asyncio.wait_for(server.close_all_connections(), 5.0)
        except asyncio.TimeoutError:
            log.warning("gateway: some connections did not close within 5 s")
