"""Events of the streams' rules and their snapshots, and the rules' counts over time
(doc/analytics.md, "Wire: tracks, counts and events"; doc/api.md)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import tornado.web

from ...core.analytics.rules import NAME_RE
from ...core.counthistory import read_counts
from ...core.errors import InvalidMessage
from ...core.eventstore import EVENT_KINDS, MAX_PAGE, EventQuery, EventStore
from ...core.keys import check_event_id, check_stream_id
from .base import VIEW, BaseHandler
from .params import MAX_EPOCH_S, ParamError, parse_int, parse_number, parse_range

log = logging.getLogger(__name__)

DEFAULT_PAGE = 50


def _checked(name: str, raw: str | None, check: Callable[[str], object]) -> str | None:
    if raw is None or raw == "":
        return None
    try:
        check(raw)
    except (InvalidMessage, ValueError) as exc:
        raise ParamError(f"invalid {name} {raw[:70]!r}: {exc}") from exc
    return raw


def _rule_name(raw: str) -> None:
    if not NAME_RE.fullmatch(raw):
        raise ValueError("a rule name is 1 to 64 of A-Z a-z 0-9 _ . -")


def _kind(raw: str) -> None:
    if raw not in EVENT_KINDS:
        raise ValueError(f"must be one of {', '.join(EVENT_KINDS)}")


def parse_event_query(query: Callable[[str], str | None]) -> EventQuery:
    """``GET /api/events``'s parameters; ParamError naming the bad one."""
    since = parse_number("since", query("since"), -1.0, 0.0, MAX_EPOCH_S)
    until = parse_number("until", query("until"), -1.0, 0.0, MAX_EPOCH_S)
    if since >= 0 and until >= 0 and since > until:
        raise ParamError(f"invalid since {since:.3f}: it is after until {until:.3f}")
    return EventQuery(stream=_checked("stream", query("stream"), check_stream_id),
                      rule=_checked("rule", query("rule"), _rule_name),
                      kind=_checked("kind", query("kind"), _kind),
                      since=since if since >= 0 else None, until=until if until >= 0 else None,
                      limit=parse_int("limit", query("limit"), DEFAULT_PAGE, 1, MAX_PAGE),
                      cursor=_checked("cursor", query("cursor"), check_event_id))


class EventsHandler(BaseHandler):
    """``/api/events``: newest first, filtered, a page at a time (``next`` is the cursor)."""

    access = VIEW

    async def get(self) -> None:
        q = self.param(parse_event_query, self.query)
        page = await self.run(EventStore(self.ctx.client).query, q)
        self.write_json({"events": [e.to_json() for e in page.events], "next": page.next})


class EventSnapshotHandler(BaseHandler):
    """``/api/events/{id}/snapshot``: the JPEG kept with the event, until it expires."""

    access = VIEW

    async def get(self, raw_id: str) -> None:
        try:
            event_id = check_event_id(raw_id)
        except InvalidMessage as exc:
            raise tornado.web.HTTPError(400, "%s", str(exc)) from exc
        jpeg = await self.run(EventStore(self.ctx.client).snapshot, event_id)
        if jpeg is None:
            raise tornado.web.HTTPError(404, "no snapshot of event %r: unknown, or past the "
                                             "retention", event_id)
        self.set_header("Content-Type", "image/jpeg")
        self.set_header("Cache-Control", "private, max-age=3600")  # it never changes
        self.finish(jpeg)


class RuleCountsHandler(BaseHandler):
    """``/api/streams/{id}/rules/counts``: count samples in a time range and the totals."""

    access = VIEW

    async def get(self, raw_id: str) -> None:
        stream = self.stream_id(raw_id)
        since, until = self.param(parse_range, self.query("since"), self.query("until"),
                                  time.time())
        found = await self.run(read_counts, self.ctx.client, stream, since, until)
        self.write_json({"stream": stream, "since": since, "until": until, **found})
