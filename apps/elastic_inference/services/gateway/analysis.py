"""Analysis jobs (doc/analysis.md): submit, list, read, delete, and their frames."""

from __future__ import annotations

import logging

import tornado.web
import tornado.websocket

from ...core.auth import Role
from ...core.errors import InvalidMessage, StorageFull
from ...core.jobrequest import check_known_types, parse_job_request, resolve_source
from ...core.jobs import JobFrame
from ...core.ratelimit import RateLimiter
from ...core.snapshot import (
    frame_view,
)
from .base import KNOWN_LABELS, OPERATE, BaseHandler, HeaderError, known_types, render_snapshot
from .body import JsonBodyHandler
from .params import parse_frame_number, parse_int

log = logging.getLogger(__name__)

#: Largest ``POST /api/analysis`` body; a job request is a few hundred bytes.
MAX_JOB_BODY = 16 * 1024
#: A listing reads every job it returns: pages of at most 100 (``offset`` for the rest).
DEFAULT_JOBS_LIMIT, MAX_JOBS_LIMIT = 100, 100
DEFAULT_PAGE, MAX_PAGE = 100, 1000
MAX_OFFSET = 10**9


class AnalysisJobsHandler(JsonBodyHandler):
    """``POST /api/analysis`` submits a job, ``GET /api/analysis`` lists them."""

    access = {"GET": Role.OPERATOR, "POST": Role.OPERATOR}
    max_body = MAX_JOB_BODY

    async def quota(self, limiter: RateLimiter, what: str) -> None:
        """Count this request against its principal's rate (token or user; the client
        address when authentication is off), or answer 429. A Redis outage answers 503."""
        assert self.principal is not None
        who = (self.ctx.client_ip(self.request) if self.principal.kind == "anonymous"
               else self.principal.key)
        verdict = await self.run(limiter.allow, who)
        if not verdict.allowed:
            raise HeaderError(429, f"too many {what}; retry in {verdict.retry_after_header} s",
                              {"Retry-After": verdict.retry_after_header})

    async def get(self) -> None:
        limit = self.param(parse_int, "limit", self.query("limit"), DEFAULT_JOBS_LIMIT, 1,
                           MAX_JOBS_LIMIT)
        offset = self.param(parse_int, "offset", self.query("offset"), 0, 0, MAX_OFFSET)
        await self.quota(self.ctx.list_quota, "job listings")
        self.write_json({"jobs": await self.jobs(lambda store: store.recent(limit, offset))})

    async def post(self) -> None:
        body = self.json_body("the job")
        try:
            request = parse_job_request(body, KNOWN_LABELS)
            # Before Redis, the media directory or DNS are asked: a refused client costs
            # a JSON parse and one Redis call.
            await self.quota(self.ctx.job_quota, "analysis jobs")
            check_known_types(request.types, await self.run(known_types, self.ctx.client))
            # On the pool: the media directory may be a network volume, a URL is resolved
            # and its redirects read (core/sourceurl.py).
            await self.run(resolve_source, request.source, self.ctx.media_dir,
                           self.ctx.source_policy)
        except InvalidMessage as exc:
            raise tornado.web.HTTPError(400, "%s", str(exc)) from exc
        try:
            await self.jobs(lambda store: store.check_room(self.ctx.job_memory_share))
        except StorageFull as exc:
            raise tornado.web.HTTPError(503, "%s", str(exc)) from exc
        job = await self.jobs(lambda store: store.get(store.create(request)))
        if job is None:  # only a DELETE racing the creation gets here
            raise tornado.web.HTTPError(404, "the new job was deleted at once")
        log.info("analysis job %s: %s, types %s, every %d frame(s), %d rule(s)", job["id"],
                 job["source"], ",".join(job["types"]), job["frame_step"], len(job["rules"]))
        self.set_header("Location", f"/api/analysis/{job['id']}")
        self.write_json(job, 201)


class AnalysisJobHandler(BaseHandler):
    access = {"GET": Role.OPERATOR, "DELETE": Role.OPERATOR}

    async def get(self, raw_id: str) -> None:
        """The job; once done, with its counts per rule and its events (computed from its
        results on the first read, in the pool, then kept)."""
        job_id = self.job_id(raw_id)
        job = await self.jobs(lambda store: store.analysed(job_id))
        if job is None:
            raise tornado.web.HTTPError(404, "unknown analysis job %r", job_id)
        self.write_json(job)

    async def delete(self, raw_id: str) -> None:
        job_id = self.job_id(raw_id)
        if not await self.jobs(lambda store: store.delete(job_id)):
            raise tornado.web.HTTPError(404, "unknown analysis job %r", job_id)
        log.info("analysis job %s deleted", job_id)
        self.set_status(204)
        self.finish()


class AnalysisResultsHandler(BaseHandler):
    access = OPERATE

    async def get(self, raw_id: str) -> None:
        job_id = self.job_id(raw_id)
        offset = self.param(parse_int, "offset", self.query("offset"), 0, 0, MAX_OFFSET)
        limit = self.param(parse_int, "limit", self.query("limit"), DEFAULT_PAGE, 1, MAX_PAGE)
        # A done job's tracks are computed with its counts, on the first read of either.
        page = await self.jobs(lambda store: store.results_page(job_id, offset, limit)
                               if store.analysed(job_id) is not None else None)
        if page is None:
            raise tornado.web.HTTPError(404, "unknown analysis job %r", job_id)
        self.write_json(page)


class AnalysisFrameHandler(BaseHandler):
    """Shared by the frame image and the frame results."""

    async def frame(self, raw_id: str, raw_frame: str, jpeg: bool) -> tuple[str, int, JobFrame]:
        job_id = self.job_id(raw_id)
        frame = self.param(parse_frame_number, raw_frame)
        found = await self.jobs(lambda store: store.read_frame(job_id, frame, jpeg))
        if found.job is None:
            raise tornado.web.HTTPError(404, "unknown analysis job %r", job_id)
        if not found.stored:
            step = found.job["frame_step"]
            raise tornado.web.HTTPError(
                404, "frame %d of job %r is not stored: the job keeps frames 0, %d, %d, ... "
                "of its video, as they are read", frame, job_id, step, 2 * step)
        return job_id, frame, found


class AnalysisFrameImageHandler(AnalysisFrameHandler):
    access = OPERATE

    async def get(self, raw_id: str, raw_frame: str) -> None:
        job_id, frame, found = await self.frame(raw_id, raw_frame, jpeg=True)
        assert found.jpeg is not None
        snap, _ = frame_view(frame, found.jpeg, found.results)
        try:
            body = await self.run(render_snapshot, snap)
        except ValueError as exc:
            log.warning("job %s frame %d: cannot annotate: %s", job_id, frame, exc)
            raise tornado.web.HTTPError(502, "frame %d of job %r is not a decodable JPEG",
                                        frame, job_id) from exc
        self.set_header("Content-Type", "image/jpeg")
        self.set_header("Cache-Control", "no-store")
        self.set_header("X-EI-Frame", str(frame))
        self.finish(body)


class AnalysisFrameResultsHandler(AnalysisFrameHandler):
    access = OPERATE

    async def get(self, raw_id: str, raw_frame: str) -> None:
        job_id, frame, found = await self.frame(raw_id, raw_frame, jpeg=False)
        _, results = frame_view(frame, b"", found.results)
        self.write_json({"id": job_id, "frame": frame, "results": results})
