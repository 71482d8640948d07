"""Base handlers (security headers, JSON errors, parameters, Redis calls off the event loop),
static files, and what handlers need of the engine (drawing boxes, the built-in types), which
core may not import."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from typing import Any, ClassVar, TypeVar, cast
from urllib.parse import unquote, urlsplit

import tornado.web
import tornado.websocket
from tornado.ioloop import IOLoop

from ...core.access import REALM, Credentials
from ...core.auth import Principal, Role
from ...core.errors import InvalidMessage
from ...core.jobs import JobStore
from ...core.keys import check_job_id, check_stream_id
from ...core.redact import redact_url
from ...core.redisconn import REDIS_DOWN_ERRORS, REDIS_DOWN_MESSAGE, RedisClient
from ...core.registry import worker_types
from ...core.sessions import CSRF_HEADER, SESSION_COOKIE, Session, csrf_matches
from ...core.snapshot import (
    Snapshot,
)
from ...core.text import has_control_characters
from ...engine.annotate import annotate_jpeg
from ...engine.models import BUILTIN_MODELS, INFER_TYPES
from .context import GatewayApp, GatewayContext
from .params import ParamError

log = logging.getLogger(__name__)

T = TypeVar("T")

SNAPSHOT_QUALITY = 80
#: Vite names files under assets/ by content hash, so they never change under one name.
IMMUTABLE = "public, max-age=31536000, immutable"
#: The ``Server`` header: the product, never its version (Tornado would send its own).
SERVER_NAME = "elastic-inference"
#: How much of a refused Host header a log line shows (repr-escaped).
LOGGED_HOST_CHARS = 100
#: Methods that change nothing: a cookie session needs no CSRF token for them.
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
#: ``access`` of routes anyone may use: health checks, the login page and its assets.
PUBLIC: Mapping[str, Role | None] = {"GET": None, "HEAD": None}
#: ``access`` of what a viewer may see.
VIEW: Mapping[str, Role | None] = {"GET": Role.VIEWER, "HEAD": Role.VIEWER}
#: ``access`` of what only an operator may see.
OPERATE: Mapping[str, Role | None] = {"GET": Role.OPERATOR, "HEAD": Role.OPERATOR}


class HeaderError(tornado.web.HTTPError):
    """An HTTP error answered with extra headers (``Retry-After``, ``WWW-Authenticate``):
    Tornado clears headers before writing an error, so they travel with the exception."""

    def __init__(self, status: int, message: str, headers: Mapping[str, str]) -> None:
        super().__init__(status, "%s", message)
        self.headers = dict(headers)



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


def _security_headers(handler: tornado.web.RequestHandler, csp: str) -> None:
    handler.set_header("Server", SERVER_NAME)
    handler.set_header("Content-Security-Policy", csp)
    handler.set_header("X-Content-Type-Options", "nosniff")
    handler.set_header("X-Frame-Options", "DENY")
    handler.set_header("Referrer-Policy", "no-referrer")


def implemented_methods(handler_class: type[tornado.web.RequestHandler]) -> list[str]:
    """The HTTP methods a handler class answers: those it defines, not Tornado's 405 stubs."""
    base = tornado.web.RequestHandler
    return [m for m in handler_class.SUPPORTED_METHODS
            if getattr(handler_class, m.lower(), None) is not getattr(base, m.lower(), None)]


def _write_json_error(handler: tornado.web.RequestHandler, status_code: int,
                      kwargs: dict[str, Any]) -> None:
    """Replace Tornado's HTML error page with ``{"error": message}``; a 405 names the
    methods the resource has in ``Allow``, as RFC 9110 requires (Tornado does not)."""
    message = handler._reason
    exc_info = kwargs.get("exc_info")
    if exc_info is not None and isinstance(exc_info[1], HeaderError):
        for name, value in exc_info[1].headers.items():
            handler.set_header(name, value)
    if status_code == 405:
        handler.set_header("Allow", ", ".join(implemented_methods(type(handler))))
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
    """What every handler shares: security headers, JSON errors, and credentials checked
    before any method runs, against the least role ``access`` names for the method.

    A method missing from ``access`` needs an admin, so a handler that forgets to declare a
    new method fails closed; ``None`` marks a public one. A method the handler does not
    implement needs only a signed-in principal, who then gets the 405.
    """

    access: ClassVar[Mapping[str, Role | None]] = {}
    principal: Principal | None = None
    session: Session | None = None

    @property
    def ctx(self) -> GatewayContext:
        """The application's shared state."""
        return cast(GatewayApp, self.application).ctx

    def set_default_headers(self) -> None:
        _security_headers(self, self.ctx.csp)

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        _write_json_error(self, status_code, kwargs)

    def log_exception(self, typ: Any, value: BaseException | None, tb: Any) -> None:
        """HTTPErrors are answers, already counted and logged per request; log only bugs."""
        if isinstance(value, tornado.web.HTTPError):
            return
        log.error("uncaught exception in %s", redact_url(self._request_summary()),
                  exc_info=value)

    async def prepare(self) -> None:
        await self.authorize()

    async def authorize(self) -> None:
        """401 without valid credentials, 403 with too low a role or a cookie session's write
        without its CSRF token; otherwise ``self.principal`` is who asks."""
        method = self.request.method or "GET"
        # A method the route lacks changes nothing: anyone signed in gets its 405.
        required = (self.access.get(method, Role.ADMIN)
                    if method in implemented_methods(type(self)) else Role.VIEWER)
        if required is None:
            return
        gate = self.ctx.gatekeeper
        access = (await self.run(gate.identify, self.credentials()) if gate.enabled
                  else gate.identify(Credentials()))
        principal = access.principal
        if principal is None or (principal.kind == "url" and method not in ("GET", "HEAD")):
            raise HeaderError(401, access.reason or "a signed URL allows GET only",
                              {"WWW-Authenticate": REALM})
        if not principal.allows(required):
            raise tornado.web.HTTPError(403, "%s %s needs the %s role (you are %s %s, %s)",
                                        method, self.request.path, required, principal.kind,
                                        principal.name, principal.role)
        if (access.session is not None and method not in SAFE_METHODS
                and not csrf_matches(access.session, self.request.headers.get(CSRF_HEADER))):
            raise tornado.web.HTTPError(403, "missing or wrong %s header: send the csrf value "
                                             "of /api/me with every change", CSRF_HEADER)
        self.principal, self.session = principal, access.session

    def credentials(self) -> Credentials:
        """What this request carries, as core.access reads it."""
        return Credentials(self.request.headers.get("Authorization"),
                           self.get_cookie(SESSION_COOKIE), self.request.path,
                           self._query_text("exp"), self._query_text("sig"))

    def _query_text(self, name: str) -> str | None:
        values = self.request.query_arguments.get(name)
        return values[-1].decode("utf-8", "replace") if values else None

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """Run sync ``fn`` (Redis or CPU work) in the pool; a Redis outage becomes a 503."""
        try:
            value: T = await IOLoop.current().run_in_executor(self.ctx.executor, fn, *args)
        except REDIS_DOWN_ERRORS as exc:
            self.ctx.health.failed(exc)
            raise tornado.web.HTTPError(503, REDIS_DOWN_MESSAGE) from exc
        self.ctx.health.ok()
        return value


class BaseHandler(SecureHandler):
    """API handlers: query parameters, JSON answers."""

    def write_json(self, data: Any, status: int = 200) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json; charset=UTF-8")
        self.set_header("Cache-Control", "no-store")
        self.finish(json.dumps(data, separators=(",", ":")))

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


def refuse_control_characters(path: str) -> None:
    """A name no file or resource can have (NUL, control characters) is a bad request, on
    every route: with or without a dashboard build in front of the unknown paths."""
    if has_control_characters(path):
        raise tornado.web.HTTPError(400, "invalid path: it contains control characters")


class NotFoundHandler(BaseHandler):
    """Every unknown path, API or not: 404 JSON (400 for a path no resource can have)."""

    async def prepare(self) -> None:
        refuse_control_characters(unquote(self.request.path))
        raise tornado.web.HTTPError(404, "no such resource: %s", self.request.path)


class HostRefusedHandler(BaseHandler):
    """Any request whose ``Host`` is not allowed (EI_ALLOWED_HOSTS): 400, before routing."""

    async def prepare(self) -> None:
        host = self.request.headers.get("Host")
        log.warning("gateway: refusing Host %s from %s (EI_ALLOWED_HOSTS)",
                    "(none)" if host is None else repr(host[:LOGGED_HOST_CHARS]),
                    self.ctx.client_ip(self.request))
        raise tornado.web.HTTPError(
            400, "%s", "Host header missing" if host is None else
            "Host header not allowed: this server answers only for its allowed host names "
            "(EI_ALLOWED_HOSTS)")


class SecureStaticHandler(SecureHandler, tornado.web.StaticFileHandler):
    """Static files with the same security headers and JSON errors as the API; public: they
    are the login page and its assets (the data they show comes from the API)."""

    access = PUBLIC

    async def get(self, path: str, include_body: bool = True) -> None:
        """A missing file, a directory or a path out of the root answers like any unknown
        path; a name no file can have is a bad request."""
        refuse_control_characters(path)
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


def known_types(client: RedisClient) -> set[str]:
    """The built-in inference types plus every type that has had a worker (sync)."""
    return set(INFER_TYPES) | set(worker_types(client))


#: Labels a rule may filter on: those of the built-in models (OIDV4's "???" is its background).
KNOWN_LABELS = frozenset(label for spec in BUILTIN_MODELS.values() for label in spec.labels
                         if label != "???")


def render_snapshot(snap: Snapshot) -> bytes:
    """The snapshot's JPEG with its boxes drawn (sync, CPU); ValueError if it is no JPEG."""
    if not snap.detections:
        return snap.jpeg
    return annotate_jpeg(snap.jpeg, snap.detections, SNAPSHOT_QUALITY)
