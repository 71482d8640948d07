"""Users and API tokens kept in Redis, and the checks a request's credentials go through.

Layout (core/keys.py): a HASH per user (``role``, ``created``, argon2 ``hash``) and a SET of
user names; a HASH per token found by the SHA-256 digest of the token (``name``, ``role``,
``created``, ``last_used``) and a HASH token name -> digest. Nothing stored lets anyone log in
or present a token: Redis holds only the argon2 hashes and the digests (:mod:`.auth`).

Tokens are principals of their own, with their own name and role; they belong to no user, so
removing a user leaves every token as it was (revoke tokens by name). A token is identified by
its name, unique among tokens, shown at creation and by ``ei auth list``.
"""

from __future__ import annotations

import logging
import secrets
import time

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from redis.cluster import RedisCluster

from . import keys
from .auth import (
    MAX_PASSWORD,
    NewToken,
    Principal,
    Role,
    TokenInfo,
    User,
    check_name,
    check_password,
    looks_like_token,
    new_token,
    token_digest,
)
from .errors import AuthError
from .redisconn import RedisClient
from .sessions import end_user_sessions
from .text import as_text

log = logging.getLogger(__name__)

#: Least seconds between two writes of a token's ``last_used``: a client sending many
#: requests a second costs one write a minute, and the time shown is at most that stale.
TOUCH_INTERVAL = 60.0

#: KEYS[1] user HASH, KEYS[2] users SET; ARGV[1] name, ARGV[2] role, ARGV[3] created,
#: ARGV[4] password hash. Returns 1, or 0 (nothing written) if the user exists.
_ADD_USER_LUA = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], 'role', ARGV[2], 'created', ARGV[3], 'hash', ARGV[4])
redis.call('SADD', KEYS[2], ARGV[1])
return 1
"""

#: KEYS[1] user HASH; ARGV[1] the hash that was verified, ARGV[2] its replacement. Returns 1,
#: or 0 if the user is gone or its password changed meanwhile (a removed user stays removed).
_REHASH_LUA = """
if redis.call('HGET', KEYS[1], 'hash') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'hash', ARGV[2])
return 1
"""

#: KEYS[1] token HASH, KEYS[2] token names HASH; ARGV[1] name, ARGV[2] digest, ARGV[3] role,
#: ARGV[4] created. Returns 1, or 0 (nothing written) if a token has that name.
_CREATE_TOKEN_LUA = """
if redis.call('HEXISTS', KEYS[2], ARGV[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], 'name', ARGV[1], 'role', ARGV[3], 'created', ARGV[4])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
return 1
"""

#: KEYS[1] token names HASH, KEYS[2] token HASH; ARGV[1] name, ARGV[2] digest. Deletes both
#: if the name still maps to that digest and returns 1; 0 if it changed meanwhile.
_REVOKE_TOKEN_LUA = """
if redis.call('HGET', KEYS[1], ARGV[1]) ~= ARGV[2] then return 0 end
redis.call('DEL', KEYS[2])
redis.call('HDEL', KEYS[1], ARGV[1])
return 1
"""

#: KEYS[1] token HASH, KEYS[2] token names HASH; ARGV[1] digest, ARGV[2] now, ARGV[3] least
#: seconds between two ``last_used`` writes. Returns {name, role, created, last_used before
#: this call or ''}, or nil when no listed token has that digest (only a listed token works).
_AUTH_TOKEN_LUA = """
local v = redis.call('HMGET', KEYS[1], 'name', 'role', 'created', 'last_used')
if not v[1] or redis.call('HGET', KEYS[2], v[1]) ~= ARGV[1] then return false end
local last = tonumber(v[4] or '')
if not last or tonumber(ARGV[2]) - last >= tonumber(ARGV[3]) then
  redis.call('HSET', KEYS[1], 'last_used', ARGV[2])
end
return {v[1], v[2], v[3] or '', v[4] or ''}
"""


def _time(raw: bytes | str | None) -> float | None:
    text = as_text(raw) if raw is not None else ""
    try:
        return float(text) if text else None
    except ValueError:
        return None


def _role(raw: bytes | str | None, what: str) -> Role | None:
    """The stored role, or None (logged) if the record is damaged: it then grants nothing."""
    try:
        return Role.parse(as_text(raw)) if raw is not None else None
    except AuthError:
        log.warning("%s has an unknown role; it grants nothing", what)
        return None


class AuthStore:
    """Add, list and remove users and tokens; check passwords and tokens."""

    def __init__(self, client: RedisClient, hasher: PasswordHasher | None = None,
                 touch_interval: float = TOUCH_INTERVAL) -> None:
        self.client = client
        self.hasher = hasher or PasswordHasher()
        self.touch_interval = touch_interval
        self._dummy_hash = ""
        self._add_user = client.register_script(_ADD_USER_LUA)
        self._rehash = client.register_script(_REHASH_LUA)
        self._create_token = client.register_script(_CREATE_TOKEN_LUA)
        self._revoke_token = client.register_script(_REVOKE_TOKEN_LUA)
        self._auth_token = client.register_script(_AUTH_TOKEN_LUA)

    # users

    def add_user(self, name: str, role: Role, password: str, now: float | None = None) -> User:
        """Add a user; AuthError if the name, password or role is invalid or the user exists."""
        check_name(name, "user name")
        check_password(password)
        role = Role(role)
        created = time.time() if now is None else now
        hashed = self.hasher.hash(password)
        if not self._add_user(keys=[keys.auth_user(name), keys.auth_users()],
                              args=[name, str(role), f"{created:.3f}", hashed]):
            raise AuthError(f"user {name!r} exists already; remove it first to replace it")
        log.info("user %s added with role %s", name, role)
        return User(name, role, round(created, 3))

    def remove_user(self, name: str) -> None:
        """Remove a user and end its login sessions (its tokens, which are not its own, stay);
        AuthError if none."""
        check_name(name, "user name")
        pipe = self.client.pipeline(transaction=True)
        pipe.delete(keys.auth_user(name))
        pipe.srem(keys.auth_users(), name)
        deleted, _ = pipe.execute()
        if not deleted:
            raise AuthError(f"no user named {name!r}")
        ended = end_user_sessions(self.client, name)
        log.info("user %s removed (%d login session(s) ended)", name, ended)

    def first_admin(self, name: str = "admin") -> str | None:
        """On a store without users, add ``name`` as admin with a random password and return
        the password (for ``ei up`` to show once); None if any user exists. Two callers at
        once cannot both succeed: the add refuses an existing user."""
        if self.client.scard(keys.auth_users()):
            return None
        password = secrets.token_urlsafe(18)
        try:
            self.add_user(name, Role.ADMIN, password)
        except AuthError:
            return None
        return password

    def has_user(self, name: str) -> bool:
        """Whether a user of that (valid) name exists: ``ei auth`` asks before the prompt."""
        return bool(self.client.exists(keys.auth_user(check_name(name, "user name"))))

    def users(self) -> list[User]:
        """Every user, by name."""
        names = sorted(as_text(n) for n in self.client.smembers(keys.auth_users()))
        pipe = self.client.pipeline(transaction=False)
        for name in names:
            pipe.hmget(keys.auth_user(name), "role", "created")
        found = []
        for name, (role, created) in zip(names, pipe.execute(), strict=True):
            parsed = _role(role, f"user {name}")
            if parsed is not None:
                found.append(User(name, parsed, _time(created) or 0.0))
        return found

    def authenticate_password(self, name: str, password: str) -> User | None:
        """The user if ``password`` is theirs, else None. An unknown or invalid name costs
        the same argon2 verification as a wrong password, so timing does not tell which
        users exist. A hash made with weaker parameters than the hasher's is replaced."""
        stored = role = created = None
        valid_name = isinstance(name, str) and keys.AUTH_NAME_RE.fullmatch(name) is not None
        if valid_name:
            stored, role, created = self.client.hmget(keys.auth_user(name), "hash", "role",
                                                      "created")
        candidate = password if isinstance(password, str) and len(password) <= MAX_PASSWORD else ""
        if stored is None:
            self._verify(self._dummy(), candidate, "the dummy")
            return None
        hashed = as_text(stored)
        if not self._verify(hashed, candidate, f"user {name}"):
            return None
        parsed = _role(role, f"user {name}")
        if parsed is None:
            return None
        if self.hasher.check_needs_rehash(hashed):
            self._rehash(keys=[keys.auth_user(name)], args=[hashed, self.hasher.hash(candidate)])
            log.info("user %s: password hash upgraded to the current parameters", name)
        return User(name, parsed, _time(created) or 0.0)

    def _verify(self, hashed: str, password: str, whose: str) -> bool:
        try:
            return bool(self.hasher.verify(hashed, password))
        except VerificationError:  # wrong password (VerifyMismatchError) or a damaged hash
            return False
        except InvalidHashError:
            log.warning("%s has a damaged password hash; the login is refused", whose)
            return False

    def _dummy(self) -> str:
        """A hash of a random password, made once: what an unknown user is checked against."""
        if not self._dummy_hash:
            self._dummy_hash = self.hasher.hash(secrets.token_urlsafe(16))
        return self._dummy_hash

    # tokens

    def create_token(self, role: Role, name: str | None = None,
                     now: float | None = None) -> NewToken:
        """Create a token with ``role``, named ``name`` or ``token-`` and 8 hex digits;
        AuthError if the name is invalid or taken. The token is in the result only."""
        role = Role(role)
        created = time.time() if now is None else now
        for _ in range(5):
            token_name = check_name(name, "token name") if name else f"token-{secrets.token_hex(4)}"
            token = new_token()
            digest = token_digest(token)
            if self._create_token(keys=[keys.auth_token(digest), keys.auth_tokens()],
                                  args=[token_name, digest, str(role), f"{created:.3f}"]):
                log.info("token %s created with role %s", token_name, role)
                return NewToken(TokenInfo(token_name, role, round(created, 3)), token)
            if name:
                break
        raise AuthError(f"a token named {token_name!r} exists already; revoke it or choose "
                        "another name")

    def revoke_token(self, name: str) -> None:
        """Revoke the token named ``name``: it stops working at once; AuthError if none."""
        check_name(name, "token name")
        while True:
            digest = self.client.hget(keys.auth_tokens(), name)
            if digest is None:
                raise AuthError(f"no token named {name!r}")
            digest = as_text(digest)
            if self._revoke_token(keys=[keys.auth_tokens(), keys.auth_token(digest)],
                                  args=[name, digest]):
                log.info("token %s revoked", name)
                return

    def tokens(self) -> list[TokenInfo]:
        """Every token (never the token nor its digest), by name."""
        index = sorted((as_text(n), as_text(d))
                       for n, d in self.client.hgetall(keys.auth_tokens()).items())
        pipe = self.client.pipeline(transaction=False)
        for _, digest in index:
            pipe.hmget(keys.auth_token(digest), "role", "created", "last_used")
        found = []
        for (name, _), (role, created, last_used) in zip(index, pipe.execute(), strict=True):
            parsed = _role(role, f"token {name}")
            if parsed is not None:
                found.append(TokenInfo(name, parsed, _time(created) or 0.0, _time(last_used)))
        return found

    def authenticate_token(self, token: str, now: float | None = None) -> Principal | None:
        """The token's principal if ``token`` is a live token, else None; records its use.

        The lookup is by digest, so its timing depends on the digest, not on how much of a
        guess matches a real token.
        """
        if not looks_like_token(token):
            return None
        digest = token_digest(token)
        now = time.time() if now is None else now
        found = self._auth_token(keys=[keys.auth_token(digest), keys.auth_tokens()],
                                 args=[digest, f"{now:.3f}", self.touch_interval])
        if not found:
            return None
        name = as_text(found[0])
        role = _role(found[1], f"token {name}")
        return Principal("token", name, role) if role is not None else None


def migrate_legacy_keys(client: RedisClient) -> int:
    """Move users, tokens and sessions kept under their names before hash tags
    (``ei:auth:*``) to today's (``ei:{auth}:*``); how many keys moved. ``RENAMENX`` keeps
    each key's expiry and never overwrites a key written since. A cluster is left alone (a
    rename across hash slots is refused there; doc/scaling.md, "Redis Cluster", says how to
    move them)."""
    if isinstance(client, RedisCluster):
        return 0
    moved = 0
    for raw in client.scan_iter(match=keys.LEGACY_AUTH_PREFIX + "*", count=500):
        key = as_text(raw)
        if client.renamenx(key, keys.auth_key_of_legacy(key)):
            moved += 1
    if moved:
        log.info("moved %d user, token and session key(s) to their hash-tagged names", moved)
    return moved
