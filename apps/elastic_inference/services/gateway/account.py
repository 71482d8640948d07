"""Logging in and out, who am I, signed URLs, and the admin's view of users and tokens."""

from __future__ import annotations

import re
from typing import Any

import tornado.web

from ...core import clients
from ...core.access import ANONYMOUS, REALM, LoginThrottled
from ...core.auth import Role
from ...core.authstore import AuthStore
from ...core.errors import InvalidMessage
from ...core.sessions import SESSION_COOKIE
from ...core.text import load_json_body
from .base import VIEW, BaseHandler, HeaderError
from .body import JsonBodyHandler
from .params import parse_int

#: Largest login body: a name and a password (at most 1,024 characters) in JSON.
MAX_LOGIN_BODY = 4096
#: Paths a signed URL may be made for: what ``<img>`` tags and players show.
SIGNABLE = re.compile(r"/api/streams/[A-Za-z0-9_.-]{1,64}/(?:mjpeg|snapshot\.jpg)")
DEFAULT_URL_TTL, MAX_URL_TTL = 300, 3600
WRONG_LOGIN = "wrong user name or password"


class AccountHandler(BaseHandler):
    def me(self) -> dict[str, Any]:
        """Who this request is (``/api/me`` and the login answer)."""
        assert self.principal is not None
        return {"name": self.principal.name, "role": str(self.principal.role),
                "kind": self.principal.kind, "auth": self.ctx.gatekeeper.enabled,
                "csrf": self.session.csrf if self.session is not None else None}


class MeHandler(AccountHandler):
    """``GET /api/me``: the principal, and a cookie session's CSRF token."""

    access = VIEW

    def get(self) -> None:
        self.write_json(self.me())


class LoginHandler(JsonBodyHandler, AccountHandler):
    """``POST /api/login`` with ``{"name", "password"}`` as JSON: a session cookie."""

    access = {"POST": None}
    max_body = MAX_LOGIN_BODY

    async def post(self) -> None:
        # JSON only: a cross-site form cannot send it without a CORS preflight, never
        # granted, so no other site can log a browser in as someone else.
        name, password = self.login_body()
        gate = self.ctx.gatekeeper
        if not gate.enabled:
            self.principal = ANONYMOUS
            self.write_json(self.me())
            return
        client = self.ctx.client_ip(self.request)
        try:
            new = await self.run(gate.login, name, password, client, self.ctx.session_ttl)
        except LoginThrottled as exc:
            raise HeaderError(429, str(exc), {"Retry-After": exc.verdict.retry_after_header}
                              ) from None
        if new is None:
            raise HeaderError(401, WRONG_LOGIN, {"WWW-Authenticate": REALM})
        secure = self.ctx.tls or clients.forwarded_https(
            self.request.remote_ip or "", self.request.headers.get_list, self.ctx.limits.trusted)
        self.set_cookie(SESSION_COOKIE, new.cookie, path="/", httponly=True, secure=secure,
                        samesite="Strict", max_age=self.ctx.session_ttl)
        self.principal = new.principal
        self.write_json({**self.me(), "csrf": new.csrf})

    def login_body(self) -> tuple[str, str]:
        try:
            data = load_json_body(self.json_body("the login"))
        except InvalidMessage as exc:
            raise tornado.web.HTTPError(400, "%s", str(exc)) from None
        if (not isinstance(data, dict) or set(data) != {"name", "password"}
                or not all(isinstance(v, str) for v in data.values())):
            raise tornado.web.HTTPError(400, "send {\"name\": ..., \"password\": ...}, both "
                                             "strings, and nothing else")
        return data["name"], data["password"]


class LogoutHandler(AccountHandler):
    """``POST /api/logout``: ends the cookie's session everywhere, and clears the cookie."""

    access = {"POST": Role.VIEWER}

    async def post(self) -> None:
        sessions = self.ctx.gatekeeper.sessions
        if self.session is None or sessions is None:
            raise tornado.web.HTTPError(400, "no login session to end: tokens are revoked "
                                             "with `ei auth token revoke`")
        await self.run(sessions.end, self.session)
        self.clear_cookie(SESSION_COOKIE, path="/")
        self.set_status(204)
        self.finish()


class SignedUrlHandler(AccountHandler):
    """``GET /api/signed-url?path=/api/streams/ID/mjpeg&ttl=300``: a URL any ``<img>`` tag or
    player can open without credentials until it expires (at most an hour)."""

    access = VIEW

    def get(self) -> None:
        path = self.query("path") or ""
        if not SIGNABLE.fullmatch(path):
            raise tornado.web.HTTPError(400, "path must be /api/streams/ID/mjpeg or "
                                             "/api/streams/ID/snapshot.jpg")
        ttl = self.param(parse_int, "ttl", self.query("ttl"), DEFAULT_URL_TTL, 1, MAX_URL_TTL)
        urls = self.ctx.gatekeeper.urls
        if urls is None:  # authentication is off: the path needs no signature
            self.write_json({"url": path, "expires": None})
            return
        url, expires = urls.sign(path, ttl)
        self.write_json({"url": url, "expires": expires})


class UsersHandler(BaseHandler):
    """``GET /api/users``: users and API tokens (never a hash, digest or token); admin only.
    Changes are made with ``ei auth``."""

    access = {"GET": Role.ADMIN}

    async def get(self) -> None:
        store: AuthStore = self.ctx.gatekeeper.store
        users, tokens = await self.run(lambda: (store.users(), store.tokens()))
        self.write_json({
            "users": [{"name": u.name, "role": str(u.role), "created": u.created}
                      for u in users],
            "tokens": [{"name": t.name, "role": str(t.role), "created": t.created,
                        "last_used": t.last_used} for t in tokens],
        })
