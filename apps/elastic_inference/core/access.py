"""Who is asking: a request's credentials, checked the same way by the gateway and the
websocket service (which the Ingress can reach directly), and password logins.

A request proves who it is with one of: ``Authorization: Bearer TOKEN`` (API clients), the
session cookie (browsers, :mod:`.sessions`), or a signed URL (``?exp=&sig=``, for ``<img>``
tags and players; it grants a viewer's GET of that one path). Whichever it sends is the one
checked: a bad token is refused even if a good cookie came with it, so a client never
silently acts as someone else. Everything here is sync (Redis round trips); services run it
off their event loops.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from http.cookies import CookieError, SimpleCookie

from .auth import Principal, Role
from .authstore import AuthStore
from .errors import AuthError
from .ratelimit import Rate, RateLimiter, Verdict
from .redisconn import RedisClient
from .sessions import SESSION_COOKIE, NewSession, Session, SessionStore, Signer, UrlSigner

log = logging.getLogger(__name__)

#: Everyone, when authentication is off (``--no-auth``, loopback only).
ANONYMOUS = Principal("anonymous", "anonymous", Role.ADMIN)
#: The bearer of a valid signed URL.
URL_BEARER = Principal("url", "signed-url", Role.VIEWER)
#: Failed logins allowed per client address and per user name (then one per 60/N s).
DEFAULT_LOGIN_RATE = Rate(10, 60.0)
#: How much of a refused user name a log line shows (repr-escaped).
LOGGED_NAME_CHARS = 64

#: ``WWW-Authenticate`` of every 401.
REALM = 'Bearer realm="elastic-inference"'
NO_CREDENTIALS = "authentication required: log in, or send Authorization: Bearer TOKEN"


@dataclass(frozen=True)
class Credentials:
    """What a request carries, read by each service from its own request object."""

    authorization: str | None = None
    #: The session cookie's value (:func:`session_cookie` finds it in a Cookie header).
    cookie: str | None = None
    #: The request path and its ``exp``/``sig`` query values, for signed URLs.
    path: str = ""
    exp: str | None = None
    sig: str | None = None


@dataclass(frozen=True)
class Access:
    """The outcome: a principal, or None and why (shown in the 401)."""

    principal: Principal | None
    session: Session | None = None
    reason: str = ""


class LoginThrottled(AuthError):
    """Too many logins from this client or for this user: retry after ``verdict``."""

    def __init__(self, verdict: Verdict) -> None:
        super().__init__(f"too many failed logins; retry in {verdict.retry_after_header} s")
        self.verdict = verdict


def session_cookie(header: str | None) -> str | None:
    """The session cookie's value in a ``Cookie`` header, or None."""
    if not header:
        return None
    jar: SimpleCookie = SimpleCookie()
    try:
        jar.load(header)
    except CookieError:
        return None
    morsel = jar.get(SESSION_COOKIE)
    return morsel.value if morsel is not None else None


class Gatekeeper:
    """Checks credentials (``identify``) and passwords (``login``); ``enabled=False`` lets
    everyone in as :data:`ANONYMOUS` (and then needs no secret)."""

    def __init__(self, client: RedisClient, signer: Signer | None, *, enabled: bool = True,
                 store: AuthStore | None = None,
                 login_rate: Rate | None = DEFAULT_LOGIN_RATE) -> None:
        if enabled and signer is None:
            raise AuthError("authentication needs a signing secret (EI_SESSION_SECRET)")
        self.enabled = enabled
        self.store = store or AuthStore(client)
        self.sessions = SessionStore(client, signer) if signer is not None else None
        self.urls = UrlSigner(signer) if signer is not None else None
        self.client_logins = RateLimiter(client, "login-client", login_rate)
        self.user_logins = RateLimiter(client, "login-user", login_rate)

    def identify(self, creds: Credentials, now: float | None = None) -> Access:
        """Who sent ``creds``; Redis errors propagate (the caller answers 503)."""
        if not self.enabled:
            return Access(ANONYMOUS)
        assert self.sessions is not None and self.urls is not None
        if creds.authorization is not None:
            scheme, _, token = creds.authorization.strip().partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                return Access(None, reason="send the token as Authorization: Bearer TOKEN")
            principal = self.store.authenticate_token(token.strip(), now)
            return (Access(principal) if principal is not None
                    else Access(None, reason="invalid or revoked token"))
        if creds.sig is not None or creds.exp is not None:
            if self.urls.check(creds.path, creds.exp or "", creds.sig or "", now):
                return Access(URL_BEARER)
            return Access(None, reason="invalid or expired signed URL")
        if creds.cookie:
            session = self.sessions.find(creds.cookie, now)
            return (Access(session.principal, session) if session is not None
                    else Access(None, reason="the session has expired or ended: log in again"))
        return Access(None, reason=NO_CREDENTIALS)

    def login(self, name: str, password: str, client: str, ttl: int,
              now: float | None = None) -> NewSession | None:
        """A new session if ``password`` is ``name``'s, else None (logged, without the
        password). LoginThrottled before any check once this client or this user name has
        failed too often. Each attempt is counted first (so parallel guesses cannot slip
        past the limit); a success then gives its count back to the address, and clears the
        user name's failures."""
        assert self.sessions is not None
        for limiter, who in ((self.client_logins, client), (self.user_logins, name)):
            verdict = limiter.allow(who)
            if not verdict.allowed:
                log.warning("login throttled for user %r from %s", name[:LOGGED_NAME_CHARS],
                            client)
                raise LoginThrottled(verdict)
        user = self.store.authenticate_password(name, password)
        if user is None:
            log.warning("login failed for user %r from %s", name[:LOGGED_NAME_CHARS], client)
            return None
        self.user_logins.reset(name)
        self.client_logins.refund(client)  # only failures count against an address
        log.info("login: user %s (%s) from %s", user.name, user.role, client)
        return self.sessions.create(user.name, user.role, ttl, now)
