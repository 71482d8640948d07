"""A stream's rules (zones and lines, doc/analytics.md "Rules"): read, replace, delete."""

from __future__ import annotations

import logging
from typing import Any

import tornado.web

from ...core.analytics.rules import parse_rules
from ...core.auth import Role
from ...core.errors import InvalidMessage
from ...core.rulestore import RuleStore, StoredRules
from .base import KNOWN_LABELS
from .body import JsonBodyHandler

log = logging.getLogger(__name__)

#: Largest ``PUT`` body: 32 rules of 32 points and their labels fit in well under 64 KiB.
MAX_RULES_BODY = 64 * 1024


def rules_json(stream: str, stored: StoredRules) -> dict[str, Any]:
    """The answer of GET and PUT: the document plus what says which write it is."""
    return {"stream": stream, "version": stored.version, "updated_ms": stored.updated_ms,
            "rules": [r.to_json() for r in stored.rules]}


class RulesHandler(JsonBodyHandler):
    """``/api/streams/{id}/rules``: anyone who may watch a stream may see its rules; only an
    operator changes them. A stream need not be live: rules can be set before it starts."""

    access = {"GET": Role.VIEWER, "HEAD": Role.VIEWER, "PUT": Role.OPERATOR,
              "DELETE": Role.OPERATOR}
    max_body = MAX_RULES_BODY

    async def get(self, raw_id: str) -> None:
        stream = self.stream_id(raw_id)
        store = RuleStore(self.ctx.client)
        try:
            stored = await self.run(store.get, stream)
        except InvalidMessage as exc:  # a damaged value: say so, never guess
            log.error("rules of %s: the stored value is unreadable: %s", stream, exc)
            raise tornado.web.HTTPError(500, "the stored rules of %r are damaged; PUT them "
                                             "again", stream) from exc
        self.write_json(rules_json(stream, stored))

    async def put(self, raw_id: str) -> None:
        stream = self.stream_id(raw_id)
        body = self.json_body("the rules")
        policy = self.ctx.source_policy

        def check_url(url: str) -> object:  # a webhook is an outbound request, like a source
            return policy.check(url, what="webhook")

        try:
            # In the pool: checking a webhook's host resolves its name.
            rules = await self.run(parse_rules, body, KNOWN_LABELS, check_url)
        except InvalidMessage as exc:
            raise tornado.web.HTTPError(400, "%s", str(exc)) from exc
        stored = await self.run(RuleStore(self.ctx.client).put, stream, rules)
        log.info("rules of %s replaced: %d rule(s), version %d", stream, len(rules),
                 stored.version)
        self.write_json(rules_json(stream, stored))

    async def delete(self, raw_id: str) -> None:
        stream = self.stream_id(raw_id)
        if await self.run(RuleStore(self.ctx.client).delete, stream):
            log.info("rules of %s deleted", stream)
        self.set_status(204)
        self.finish()
