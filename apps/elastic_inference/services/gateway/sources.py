"""Managed sources (doc/sources.md): list, create, read, replace, delete.

The gateway only writes the registry (``ei:sources``); the stream pool reads it and reports
each source's state in the stream registry, which the answers show.
"""

from __future__ import annotations

import logging

import tornado.web

from ...core.auth import Role
from ...core.errors import InvalidMessage
from ...core.jobrequest import check_known_types
from ...core.sourcerequest import check_source, keep_stored_url, source_answer, source_answers
from ...core.sources import (
    MAX_SOURCES,
    SourceConfig,
    SourceStore,
    parse_source_config,
    public_source,
)
from .base import known_types
from .body import JsonBodyHandler

log = logging.getLogger(__name__)

FULL = (f"the registry holds {MAX_SOURCES} sources, the most it takes: delete one before "
        "adding another")


class SourceHandlerBase(JsonBodyHandler):
    """What the two routes share: the store, validation and answers."""

    @property
    def store(self) -> SourceStore:
        return SourceStore(self.ctx.client)

    async def answer(self, config: SourceConfig, status: int = 200) -> None:
        members = await self.run(self.ctx.registry.members)
        member = next((m for m in members if m.id == config.id), None)
        self.write_json(source_answer(config, member), status)

    async def validated(self, body: bytes, stream_id: str | None,
                        stored: SourceConfig | None = None) -> SourceConfig:
        """The source the body asks for, checked as the pool will open it; 400 naming the
        problem. A PUT's masked URL is swapped for the stored one before the checks."""
        try:
            config = keep_stored_url(parse_source_config(body, stream_id), stored)
            check_known_types(config.types, await self.run(known_types, self.ctx.client))
            # In the pool: a URL's host is resolved and its redirects read, the media
            # directory may be a network volume.
            await self.run(check_source, config, self.ctx.media_dir, self.ctx.source_policy)
        except InvalidMessage as exc:
            raise tornado.web.HTTPError(400, "%s", str(exc)) from exc
        return config

    async def stored(self, stream_id: str) -> SourceConfig | None:
        """The stored source; a damaged value is a 500 that says how to mend it."""
        try:
            return await self.run(self.store.get, stream_id)
        except InvalidMessage as exc:
            log.error("source %s: the stored value is unreadable: %s", stream_id, exc)
            raise tornado.web.HTTPError(500, "the stored source %r is damaged; PUT it again or "
                                             "DELETE it", stream_id) from exc

    async def check_room(self) -> None:
        if await self.run(self.store.count) >= MAX_SOURCES:
            raise tornado.web.HTTPError(409, "%s", FULL)


class SourcesHandler(SourceHandlerBase):
    """``GET /api/sources`` (viewer), ``POST /api/sources`` (operator)."""

    access = {"GET": Role.VIEWER, "HEAD": Role.VIEWER, "POST": Role.OPERATOR}

    async def get(self) -> None:
        configs = await self.run(self.store.all)
        members = await self.run(self.ctx.registry.members)
        self.write_json({"sources": source_answers(configs, members)})

    async def post(self) -> None:
        config = await self.validated(self.json_body("the source"), None)
        await self.check_room()
        created = await self.run(self.store.create, config)
        if created is None:
            raise tornado.web.HTTPError(409, "source %r exists: PUT /api/sources/%s replaces "
                                             "it", config.id, config.id)
        log_write("created", created)
        self.set_header("Location", f"/api/sources/{created.id}")
        await self.answer(created, 201)


class SourceHandler(SourceHandlerBase):
    """``/api/sources/{id}``: read (viewer), create or replace, delete (operator)."""

    access = {"GET": Role.VIEWER, "HEAD": Role.VIEWER, "PUT": Role.OPERATOR,
              "DELETE": Role.OPERATOR}

    async def get(self, raw_id: str) -> None:
        stream = self.stream_id(raw_id)
        config = await self.stored(stream)
        if config is None:
            raise tornado.web.HTTPError(404, "unknown source %r", stream)
        await self.answer(config)

    async def put(self, raw_id: str) -> None:
        stream = self.stream_id(raw_id)
        body = self.json_body("the source")
        try:
            stored = await self.run(self.store.get, stream)
        except InvalidMessage:  # a damaged value: this PUT is its repair
            stored = None
        config = await self.validated(body, stream, stored)
        if stored is None:
            await self.check_room()
        written = await self.run(self.store.put, config)
        log_write("created" if stored is None else "replaced", written)
        await self.answer(written, 201 if stored is None else 200)

    async def delete(self, raw_id: str) -> None:
        stream = self.stream_id(raw_id)
        if not await self.run(self.store.delete, stream):
            raise tornado.web.HTTPError(404, "unknown source %r", stream)
        log.info("source %s deleted", stream)
        self.set_status(204)
        self.finish()


def log_write(what: str, config: SourceConfig) -> None:
    """One line per write, the URL masked as in answers."""
    log.info("source %s %s: %s (%s), types %s, fps %g, max_width %d, %s", config.id, what,
             public_source(config.source), config.kind, ",".join(config.types), config.fps,
             config.max_width, "enabled" if config.enabled else "disabled")

