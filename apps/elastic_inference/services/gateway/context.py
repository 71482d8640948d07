"""The application and the state its handlers share (one per application)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import tornado.web
import tornado.websocket
from tornado.httputil import HTTPServerRequest

from ...core import clients
from ...core.access import Gatekeeper
from ...core.broker import OutputBroker
from ...core.hosts import HostPolicy
from ...core.metrics import GatewayMetrics
from ...core.netguard import NO_URLS, SourcePolicy
from ...core.ratelimit import Rate, RateLimiter
from ...core.redact import redact_url
from ...core.redisconn import RedisClient, error_text, forget_traceback
from ...core.registry import StreamRegistry

if TYPE_CHECKING:
    from .relay import WebsocketProxyHandler


log = logging.getLogger(__name__)

#: How long shutdown waits for viewers and proxied websockets to finish.
SHUTDOWN_WAIT_S = 3.0
#: Answered for any Host: load balancers and probes name the pod or node by its address.
UNCHECKED_HOST_PATHS = frozenset({"/healthz", "/readyz"})



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

    client: RedisClient
    executor: ThreadPoolExecutor
    #: Who may do what (core.access); disabled only with EI_NO_AUTH on loopback.
    gatekeeper: Gatekeeper
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
    #: Which URL sources jobs may name (EI_SOURCE_ALLOW); by default none.
    source_policy: SourcePolicy = NO_URLS
    #: Allowed Host and Origin headers (EI_ALLOWED_HOSTS, EI_ALLOWED_ORIGINS).
    hosts: HostPolicy = field(default_factory=lambda: HostPolicy.build(()))
    #: Per client, shared by every replica through Redis (EI_JOB_RATE, EI_LIST_RATE).
    job_rate: Rate | None = None
    list_rate: Rate | None = None
    #: Served over HTTPS (EI_TLS_CERT): session cookies are then Secure.
    tls: bool = False
    #: Seconds a login session lasts (EI_SESSION_TTL).
    session_ttl: int = 43200
    broker: OutputBroker = field(init=False)
    registry: StreamRegistry = field(init=False)
    #: Blocking reads of MJPEG viewers: one thread each at most, apart from the API's pool.
    follow_pool: ThreadPoolExecutor = field(init=False)
    mjpeg_caps: clients.ConnectionCaps = field(init=False)
    proxy_caps: clients.ConnectionCaps = field(init=False)
    job_quota: RateLimiter = field(init=False)
    list_quota: RateLimiter = field(init=False)
    proxies: set[WebsocketProxyHandler] = field(init=False, default_factory=set)
    stopping: asyncio.Event = field(init=False, default_factory=asyncio.Event)

    def __post_init__(self) -> None:
        self.broker = OutputBroker(self.client)
        self.registry = StreamRegistry(self.client)
        self.job_quota = RateLimiter(self.client, "jobs", self.job_rate)
        self.list_quota = RateLimiter(self.client, "job-lists", self.list_rate)
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


class GatewayApp(tornado.web.Application):
    """The application: its handlers reach the shared state as ``self.ctx`` (one per
    application, not per route). Counts every request by handler and status; access log at
    debug for successes."""

    def __init__(self, ctx: GatewayContext, handlers: list[Any],
                 host_refused: type[tornado.web.RequestHandler], **settings: Any) -> None:
        super().__init__(handlers, **settings)
        self.ctx = ctx
        self.host_refused = host_refused

    def find_handler(self, request: HTTPServerRequest,
                     **kwargs: Any) -> tornado.web._HandlerDelegate:
        """Every route but the health checks answers only for an allowed ``Host``: the
        allow-list applies before routing, so no route can be left out."""
        if (request.path not in UNCHECKED_HOST_PATHS
                and not self.ctx.hosts.allows_host(request.headers.get("Host"))):
            return self.get_handler_delegate(request, self.host_refused)
        return super().find_handler(request, **kwargs)

    def log_request(self, handler: tornado.web.RequestHandler) -> None:
        status = handler.get_status()
        name = type(handler).__name__
        metrics = self.ctx.metrics
        if metrics is not None:
            metrics.requests.labels(name, str(status)).inc()
        level = logging.DEBUG if status < 400 else logging.INFO if status < 500 else \
            logging.WARNING
        if log.isEnabledFor(level):
            log.log(level, "%d %s %.1fms", status, redact_url(handler._request_summary()),
                    1000.0 * handler.request.request_time())
