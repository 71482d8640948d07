"""Credentials for tests that reach the gateway or the websocket service: a signing secret,
gatekeepers, and real tokens made with the project's own store on the test's Redis."""

from __future__ import annotations

import secrets

import redis

from elastic_inference.core.access import Gatekeeper
from elastic_inference.core.auth import Role
from elastic_inference.core.authstore import AuthStore
from elastic_inference.core.sessions import Signer

#: One signing secret per test run, as EI_SESSION_SECRET would give it.
SECRET = secrets.token_urlsafe(32)
#: The environment a gateway or websocket process (or its settings) needs for it.
SECRET_ENV = {"EI_SESSION_SECRET": SECRET}


#: Everyone let in as admin, as ``--no-auth`` does; it never touches Redis (the client is a
#: placeholder that connects nowhere), for tests of something else.
NO_AUTH = Gatekeeper(redis.Redis(port=1), None, enabled=False)


def gatekeeper(client: redis.Redis, enabled: bool = True) -> Gatekeeper:
    """Credentials checked as in production (``enabled``), or everyone let in as admin, as
    ``--no-auth`` does, for tests of something else on an unreachable Redis."""
    return Gatekeeper(client, Signer(SECRET) if enabled else None, enabled=enabled)


def token(client: redis.Redis, role: Role = Role.ADMIN) -> str:
    """A fresh API token with ``role`` (a random name: tests may make many)."""
    return AuthStore(client).create_token(role).token


def bearer(client: redis.Redis, role: Role = Role.ADMIN) -> dict[str, str]:
    """The ``Authorization`` header of a fresh token with ``role``."""
    return {"Authorization": f"Bearer {token(client, role)}"}


