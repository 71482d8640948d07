"""Roles, users and API tokens: the pure parts (the Redis store is :mod:`.authstore`).

Three roles, ordered: a ``viewer`` watches (dashboard, live, history, snapshots, MJPEG), an
``operator`` also runs analysis jobs (and later manages sources and zones), an ``admin`` also
manages users and tokens. A route states the least role it needs; :meth:`Role.allows` decides.

Passwords are hashed with argon2id (argon2-cffi's defaults, RFC 9106's low-memory choice), a
slow, memory-hard hash, because people choose guessable passwords. API tokens are 256 random
bits: no guess can succeed, so a fast SHA-256 digest is enough, and it lets a request find its
token by key in one lookup instead of trying a slow hash against every stored one.
"""

from __future__ import annotations

import enum
import hashlib
import re
import secrets
from dataclasses import dataclass, field
from typing import Literal

from .errors import AuthError
from .keys import AUTH_NAME_RE

#: Shortest password accepted (NIST SP 800-63B asks for at least 8; 12 leaves a margin).
MIN_PASSWORD = 12
#: Longest password accepted: argon2 hashes anything, but a megabyte "password" is only work.
MAX_PASSWORD = 1024
#: Every API token starts with this, so a leaked one is recognisable (secret scanners, logs).
TOKEN_PREFIX = "ei_"
#: Random bytes in a token: 256 bits, 43 URL-safe characters after the prefix.
TOKEN_BYTES = 32
#: A token as :func:`new_token` makes it (32 bytes are 43 base64url characters, unpadded).
TOKEN_RE = re.compile(rf"^{re.escape(TOKEN_PREFIX)}[A-Za-z0-9_-]{{43}}$")


class Role(enum.IntEnum):
    """What a principal may do; a higher role may do everything a lower one may."""

    VIEWER = 1
    OPERATOR = 2
    ADMIN = 3

    def allows(self, required: Role) -> bool:
        """Whether this role may do what needs ``required``."""
        return self >= required

    def __str__(self) -> str:
        return self.name.lower()

    @classmethod
    def parse(cls, text: str) -> Role:
        """The role named ``text`` (any case); AuthError naming the allowed ones otherwise."""
        try:
            return cls[text.strip().upper()]
        except (KeyError, AttributeError):
            raise AuthError(f"unknown role {text!r}: choose one of "
                            f"{', '.join(str(r) for r in cls)}") from None


def check_name(name: str, what: str = "name") -> str:
    """Return ``name`` if it may name a user or token, else AuthError saying the rule."""
    if not isinstance(name, str) or not AUTH_NAME_RE.fullmatch(name):
        raise AuthError(f"invalid {what} {name!r}: use 1 to 64 lower-case letters, digits, "
                        "'.', '_' or '-', starting with a letter or digit")
    return name


def check_password(password: str) -> str:
    """Return ``password`` if it is long enough (and not absurdly long); the error never
    shows it."""
    if not isinstance(password, str) or len(password) < MIN_PASSWORD:
        raise AuthError(f"the password is too short: use at least {MIN_PASSWORD} characters")
    if len(password) > MAX_PASSWORD:
        raise AuthError(f"the password is too long: use at most {MAX_PASSWORD} characters")
    return password


def new_token() -> str:
    """A fresh API token: the prefix and 256 random bits, URL-safe."""
    return TOKEN_PREFIX + secrets.token_urlsafe(TOKEN_BYTES)


def token_digest(token: str) -> str:
    """SHA-256 hex digest of ``token``: what is stored and looked up instead of the token.

    A slow hash is not needed: the token is random, so there is nothing to guess.
    """
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def looks_like_token(token: str) -> bool:
    """Whether ``token`` has the shape :func:`new_token` gives (checked before any lookup)."""
    return isinstance(token, str) and TOKEN_RE.fullmatch(token) is not None


@dataclass(frozen=True)
class User:
    """A user as the store returns it: never the password hash."""

    name: str
    role: Role
    created: float


@dataclass(frozen=True)
class TokenInfo:
    """An API token as the store returns it: never the token nor its digest."""

    name: str
    role: Role
    created: float
    last_used: float | None = None


@dataclass(frozen=True)
class NewToken:
    """A token just created: the only time the token itself is known; show it once."""

    info: TokenInfo
    token: str = field(repr=False)


@dataclass(frozen=True)
class Principal:
    """Who made a request, once authenticated: a user (a login session), a token, a signed
    URL, or anyone at all when authentication is off (``--no-auth``)."""

    kind: Literal["user", "token", "url", "anonymous"]
    name: str
    role: Role

    def allows(self, required: Role) -> bool:
        return self.role.allows(required)

    @property
    def key(self) -> str:
        """What rate limits count this principal by: ``kind:name``."""
        return f"{self.kind}:{self.name}"
