"""Browser login sessions, and the signed values that carry them (cookies, short-lived URLs).

A session is a HASH in Redis found by the SHA-256 digest of a random id (as tokens are,
:mod:`.authstore`), so Redis holds nothing that lets anyone in, and ending a session (logout,
user removed) takes effect on the next request of every gateway replica and websocket
server. The cookie carries ``user.id.expires.mac``: the MAC (HMAC-SHA256 with
``EI_SESSION_SECRET``) refuses a forged or altered cookie before Redis is asked, and names the
user so the lookup reads the session and the user's current role in one script: a role
changed or a user removed applies at once.

Each session has its own CSRF token, returned at login and by ``/api/me``; a state-changing
request made with the cookie must echo it in ``X-CSRF-Token`` (SameSite=Strict already stops
cross-site requests in current browsers; the token covers the rest).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path

from . import keys
from .auth import Principal, Role, check_name, token_digest
from .errors import AuthError, ConfigError
from .redisconn import RedisClient
from .text import as_text

#: Name of the session cookie.
SESSION_COOKIE = "ei_session"
#: Header a cookie session's state-changing requests carry their CSRF token in.
CSRF_HEADER = "X-CSRF-Token"
#: Shortest EI_SESSION_SECRET accepted: 32 characters of a random base64 string are 192 bits.
MIN_SECRET = 32
#: A session id or CSRF token: 32 random bytes, URL-safe base64 without padding.
_ID_RE = re.compile(r"[A-Za-z0-9_-]{43}")

#: KEYS[1] session HASH, KEYS[2] the user's HASH; ARGV[1] the user the cookie names.
#: Returns {role, csrf, expires} while the session exists, belongs to that user and the user
#: still exists; nil otherwise.
_LOOKUP_LUA = """
local s = redis.call('HMGET', KEYS[1], 'user', 'csrf', 'expires')
if not s[1] or s[1] ~= ARGV[1] then return false end
local role = redis.call('HGET', KEYS[2], 'role')
if not role then return false end
return {role, s[2], s[3]}
"""

#: KEYS[1] session HASH, KEYS[2] the user's session SET; ARGV[1] user, ARGV[2] csrf,
#: ARGV[3] created, ARGV[4] expires, ARGV[5] ttl seconds, ARGV[6] the session's digest.
#: The SET lives as long as the newest session in it.
_CREATE_LUA = """
redis.call('HSET', KEYS[1], 'user', ARGV[1], 'csrf', ARGV[2], 'created', ARGV[3],
           'expires', ARGV[4])
redis.call('EXPIRE', KEYS[1], ARGV[5])
redis.call('SADD', KEYS[2], ARGV[6])
if redis.call('TTL', KEYS[2]) < tonumber(ARGV[5]) then redis.call('EXPIRE', KEYS[2], ARGV[5]) end
return 1
"""


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def check_secret(secret: str) -> str:
    """"" if ``secret`` may sign sessions, else what is wrong (never the secret itself)."""
    if len(secret) < MIN_SECRET:
        return (f"must be at least {MIN_SECRET} characters (e.g. `python -c \"import secrets; "
                f"print(secrets.token_urlsafe(32))\"`)")
    return ""


def stored_secret(path: Path) -> str:
    """The signing secret kept in ``path`` (``ei up``'s state directory), made on first use
    and readable by its owner only, so logins survive a restart of ``ei up``."""
    try:
        secret = path.read_text(encoding="ascii").strip()
        if not check_secret(secret):
            return secret
    except (FileNotFoundError, UnicodeDecodeError):
        pass
    secret = secrets.token_urlsafe(32)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as f:
        f.write(secret + "\n")
    os.chmod(path, 0o600)
    return secret


class Signer:
    """HMAC-SHA256 under the deployment's secret; ``purpose`` keeps a MAC made for one use
    (a cookie) from being accepted for another (a URL)."""

    def __init__(self, secret: str) -> None:
        problem = check_secret(secret)
        if problem:
            raise ConfigError(f"EI_SESSION_SECRET {problem}")
        self._key = secret.encode("utf-8")

    def mac(self, purpose: str, *parts: str) -> str:
        message = "\x00".join((purpose, *parts)).encode("utf-8")
        return _b64(hmac.new(self._key, message, hashlib.sha256).digest())

    def verify(self, mac: str, purpose: str, *parts: str) -> bool:
        return hmac.compare_digest(mac.encode("ascii", "replace"),
                                   self.mac(purpose, *parts).encode("ascii"))


@dataclass(frozen=True)
class NewSession:
    """A session just created: its cookie value and CSRF token (known only now)."""

    cookie: str = field(repr=False)
    csrf: str = field(repr=False)
    expires: int
    principal: Principal


@dataclass(frozen=True)
class Session:
    """A live session as a request finds it."""

    id_digest: str = field(repr=False)
    principal: Principal
    csrf: str = field(repr=False)
    expires: int


def _parse_cookie(cookie: str) -> tuple[str, str, int, str] | None:
    """``(user, id, expires, mac)`` if ``cookie`` has the shape of ours, else None."""
    parts = cookie.split(".")
    if len(parts) < 4:
        return None
    # User names may hold dots: the id, expiry and MAC are the last three parts.
    user, sid, expires, mac = ".".join(parts[:-3]), parts[-3], parts[-2], parts[-1]
    if not (keys.AUTH_NAME_RE.fullmatch(user) and _ID_RE.fullmatch(sid)
            and expires.isdigit() and len(expires) <= 12 and _ID_RE.fullmatch(mac)):
        return None
    return user, sid, int(expires), mac


class SessionStore:
    """Create, find and end login sessions (sync: one Redis round trip each)."""

    def __init__(self, client: RedisClient, signer: Signer) -> None:
        self.client = client
        self.signer = signer
        self._lookup = client.register_script(_LOOKUP_LUA)
        self._create = client.register_script(_CREATE_LUA)

    def create(self, user: str, role: Role, ttl: int, now: float | None = None) -> NewSession:
        """A new session of ``user`` lasting ``ttl`` seconds."""
        check_name(user, "user name")
        if ttl <= 0:
            raise AuthError("a session must last at least a second")
        now = time.time() if now is None else now
        sid, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        expires = int(now) + ttl
        digest = token_digest(sid)  # random too: SHA-256 is enough
        self._create(keys=[keys.auth_session(digest), keys.auth_user_sessions(user)],
                     args=[user, csrf, f"{now:.3f}", str(expires), str(ttl), digest])
        mac = self.signer.mac("session", user, sid, str(expires))
        return NewSession(f"{user}.{sid}.{expires}.{mac}", csrf, expires,
                          Principal("user", user, Role(role)))

    def find(self, cookie: str, now: float | None = None) -> Session | None:
        """The live session ``cookie`` names, or None: malformed, forged, expired, ended,
        or its user removed."""
        parsed = _parse_cookie(cookie) if isinstance(cookie, str) else None
        if parsed is None:
            return None
        user, sid, expires, mac = parsed
        now = time.time() if now is None else now
        if expires <= now or not self.signer.verify(mac, "session", user, sid, str(expires)):
            return None
        digest = token_digest(sid)  # random too: SHA-256 is enough
        found = self._lookup(keys=[keys.auth_session(digest), keys.auth_user(user)], args=[user])
        if not found:
            return None
        try:
            role = Role.parse(as_text(found[0]))
        except AuthError:
            return None
        return Session(digest, Principal("user", user, role), as_text(found[1]), expires)

    def end(self, session: Session) -> None:
        """End ``session`` (logout): its cookie stops working everywhere at once."""
        pipe = self.client.pipeline(transaction=True)
        pipe.delete(keys.auth_session(session.id_digest))
        pipe.srem(keys.auth_user_sessions(session.principal.name), session.id_digest)
        pipe.execute()

def end_user_sessions(client: RedisClient, user: str) -> int:
    """End every session of ``user`` (removed: a user added again later under the same name
    must not inherit them); returns how many there were."""
    members = [as_text(d) for d in client.smembers(keys.auth_user_sessions(user))]
    pipe = client.pipeline(transaction=True)
    for digest in members:
        pipe.delete(keys.auth_session(digest))
    pipe.delete(keys.auth_user_sessions(user))
    return sum(int(n) for n in pipe.execute()[:-1])


def csrf_matches(session: Session, sent: str | None) -> bool:
    """Whether the CSRF token a request sent is its session's (constant time)."""
    return bool(sent) and hmac.compare_digest(session.csrf.encode("ascii"),
                                              (sent or "").encode("ascii", "replace"))


class UrlSigner:
    """Short-lived signed URLs for ``<img>`` tags and players that cannot send a header:
    ``?exp=EXPIRES&sig=MAC`` on a path grants a viewer's GET of that path until EXPIRES."""

    def __init__(self, signer: Signer) -> None:
        self.signer = signer

    def sign(self, path: str, ttl: int, now: float | None = None) -> tuple[str, int]:
        """(the path with its ``exp`` and ``sig`` query, expiry in epoch seconds)."""
        expires = int(time.time() if now is None else now) + ttl
        mac = self.signer.mac("url", path, str(expires))
        return f"{path}?exp={expires}&sig={mac}", expires

    def check(self, path: str, exp: str, sig: str, now: float | None = None) -> bool:
        """Whether ``sig`` signs ``path`` until ``exp`` and that time has not come."""
        if not (exp.isdigit() and len(exp) <= 12 and _ID_RE.fullmatch(sig)):
            return False
        now = time.time() if now is None else now
        return int(exp) > now and self.signer.verify(sig, "url", path, exp)
