"""A stream's rules (zones and lines) in Redis: one HASH per stream (:func:`.keys.rules`).

The document is validated before it gets here (:mod:`.analytics.rules`); a write replaces all
of a stream's rules at once, so readers never see half an update. ``version`` counts writes
and ``updated`` (epoch ms) says when: a DELETE removes the key, and a later PUT starts again
at version 1 with a new ``updated``, so the pair (version, updated) changes on every write
and a reader (``ei track``) can poll it cheaply.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from . import keys
from .analytics.rules import Rule, decode, encode
from .redisconn import RedisClient
from .text import as_text


@dataclass(frozen=True)
class StoredRules:
    """A stream's rules as stored; version 0 and updated 0 when it has none."""

    rules: tuple[Rule, ...] = ()
    version: int = 0
    updated_ms: int = 0


class RuleStore:
    """Read, replace and delete a stream's rules (sync; callers run it off the event loop)."""

    def __init__(self, client: RedisClient) -> None:
        self.client = client

    def get(self, stream: str) -> StoredRules:
        """The stream's rules; InvalidMessage if the stored value is damaged."""
        raw, version, updated = self.client.hmget(keys.rules(stream),
                                                  ["rules", "version", "updated"])
        if raw is None:
            return StoredRules()
        return StoredRules(decode(raw), int(as_text(version or b"0")),
                           int(as_text(updated or b"0")))

    def put(self, stream: str, rules: tuple[Rule, ...], now: float | None = None) -> StoredRules:
        """Replace all of the stream's rules in one transaction; the new version."""
        updated = int((time.time() if now is None else now) * 1000)
        key = keys.rules(stream)
        pipe = self.client.pipeline(transaction=True)
        pipe.hset(key, mapping={"rules": encode(rules), "updated": updated})
        pipe.hincrby(key, "version", 1)
        version = int(pipe.execute()[1])
        return StoredRules(rules, version, updated)

    def delete(self, stream: str) -> bool:
        """Remove the stream's rules; whether it had any."""
        return bool(self.client.delete(keys.rules(stream)))
