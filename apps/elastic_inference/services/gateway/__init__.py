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

This package is the HTTP layer only: what the handlers show comes from core (snapshots, result
history, status, jobs). ``params`` parses query parameters; ``base`` holds the base handlers,
security headers and what needs the engine (drawing boxes, the built-in types), which core may
not import; ``streams``, ``analysis`` and ``mjpeg`` the handler groups; ``relay`` the ``/ws``
relay; ``context`` the application and its shared state; ``app`` the routing and the server
loop; ``static/`` the plain page served when the dashboard is not built.
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor

from ...core.access import Gatekeeper
from ...core.hosts import HostPolicy
from ...core.live import WS_PATH
from ...core.metrics import GatewayMetrics
from ...core.ratelimit import Rate
from ...core.runtime import running
from ...core.sessions import Signer
from ...core.settings import GatewaySettings, parse_settings
from ...core.tls import server_context
from .analysis import MAX_JOB_BODY
from .app import STATIC_DIR, dashboard_dir, make_app, serve
from .base import IMMUTABLE, REDIS_DOWN_MESSAGE, content_security_policy
from .context import GatewayApp, GatewayContext
from .mjpeg import MJPEG_BOUNDARY, MjpegFollower, mjpeg_part
from .params import (
    ParamError,
    parse_fps,
    parse_frame_number,
    parse_int,
    parse_label,
    parse_limit,
    parse_number,
    parse_range,
    parse_step,
)

__all__ = [
    "IMMUTABLE", "MAX_JOB_BODY", "MJPEG_BOUNDARY", "REDIS_DOWN_MESSAGE", "STATIC_DIR",
    "GatewayApp", "GatewayContext", "MjpegFollower", "ParamError", "content_security_policy",
    "dashboard_dir", "main", "make_app", "mjpeg_part", "parse_fps", "parse_frame_number",
    "parse_int", "parse_label", "parse_limit", "parse_number", "parse_range", "parse_step",
    "serve",
]

log = logging.getLogger(__name__)


def main(argv: list[str]) -> int:
    """``ei gateway``: parse settings, serve until SIGTERM/SIGINT, exit 0."""
    settings = parse_settings(GatewaySettings, argv, prog="ei gateway")
    # Loaded before anything starts: a bad certificate or key is a settings error.
    ssl_context = server_context(settings.tls_cert, settings.tls_key)
    with running("gateway", settings) as (runtime, client):
        if settings.websocket_upstream:
            log.info("gateway: proxying %s to %s", WS_PATH, settings.websocket_upstream)
        if settings.media_dir.is_dir():
            log.info("gateway: analysis-job sources from %s", settings.media_dir)
        else:
            log.warning("gateway: the media directory %s does not exist: analysis jobs can "
                        "read URLs only (EI_MEDIA_DIR)", settings.media_dir)
        hosts = HostPolicy.build(settings.allowed_hosts, settings.allowed_origins,
                                 settings.host)
        log.info("gateway: answering for Host %s", ", ".join(hosts.hosts))
        if settings.no_auth:
            log.warning("gateway: authentication is OFF (EI_NO_AUTH): anyone who can reach "
                        "%s:%d is admin", settings.host, settings.port)
        gatekeeper = Gatekeeper(client, None if settings.no_auth else
                                Signer(settings.session_secret), enabled=not settings.no_auth,
                                login_rate=Rate.parse(settings.login_rate))
        executor = ThreadPoolExecutor(max_workers=4, thread_name_prefix="gateway-redis")
        app = make_app(client, gatekeeper=gatekeeper,
                       metrics=GatewayMetrics(runtime.registry), executor=executor,
                       websocket_url=settings.websocket_url,
                       websocket_upstream=settings.websocket_upstream,
                       spa_dir=settings.spa_dir, max_mjpeg_clients=settings.max_mjpeg_clients,
                       max_proxy_clients=settings.max_proxy_clients,
                       media_dir=settings.media_dir,
                       job_memory_share=settings.job_memory_share,
                       source_policy=settings.source_policy(),
                       job_rate=Rate.parse(settings.job_rate),
                       list_rate=Rate.parse(settings.list_rate),
                       limits=settings.connection_limits(),
                       hosts=hosts, tls=ssl_context is not None,
                       session_ttl=settings.session_ttl)
        try:
            asyncio.run(serve(app, settings.host, settings.port, runtime.stop.is_set,
                              started=lambda _port: runtime.ready.set(),
                              ssl_context=ssl_context))
        finally:
            executor.shutdown(wait=False, cancel_futures=True)
    log.info("gateway: stopped")
    return runtime.exit_code
