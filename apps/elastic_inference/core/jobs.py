"""Analysis jobs in Redis: records, the frames they keep, and the results of each type.

A job's keys (``ei:job:{id}`` and its ``:frames`` and ``:results:{type}``) exist only while
the job does: frames and results are written by Lua scripts that check the record in the same
step, so a runner or worker finishing after a ``DELETE`` writes nothing, and the delete removes
the job's queued messages from every queue at once (:meth:`.LeasedQueue.discard`), so they no
longer count towards back-pressure. Results are stored by frame number, so a message processed
twice (a slow taker whose lease ran out) overwrites its own result and counts stay exact.

Requests are read in :mod:`.jobrequest`, the queues are :mod:`.leased`; orphans (keys of a job
that no longer exists) are swept by :mod:`.jobsweep`. The flow is in doc/analysis.md.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import redis

from . import keys
from .analytics.rules import Rule, rules_from_json
from .analytics.rules import decode as decode_rules
from .analytics.rules import encode as encode_rules
from .errors import StorageFull
from .jobanalytics import JobAnalytics, analyse
from .jobrequest import JobRequest
from .leased import LeasedQueue
from .redact import redact_url
from .redisconn import RedisClient, run_script
from .result import parse_result
from .text import as_text

#: HSET only if the job still exists, so a runner never resurrects a deleted job.
#: KEYS[1] job HASH; ARGV field1, value1, field2, value2, ... Returns 1, or 0 if the job is gone.
_UPDATE_LUA = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV))
return 1
"""

#: Store one frame with its job, only while the job exists; the job's ``frame_bytes`` stays
#: exact when a frame is stored again (a re-run extraction). KEYS[1] job HASH, KEYS[2] frames
#: HASH (one hash slot: the job id); ARGV[1] frame number, ARGV[2] JPEG. Returns 1, or 0
#: (nothing written) if the job is gone.
_STORE_FRAME_LUA = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local old = redis.call('HSTRLEN', KEYS[2], ARGV[1])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
redis.call('HINCRBY', KEYS[1], 'frame_bytes', #ARGV[2] - old)
return 1
"""

#: Store one result by frame number, only while the job exists.
#: KEYS[1] job HASH, KEYS[2] the type's results HASH; ARGV[1] frame number, ARGV[2] result JSON.
#: Returns 1, or 0 (nothing written) if the job is gone.
_STORE_RESULT_LUA = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
return 1
"""

#: Keep a done job's analytics, only while the job exists: the summary in the record, the
#: tracks by frame in their own HASH (replaced whole). KEYS[1] job HASH, KEYS[2] tracks HASH;
#: ARGV[1] summary JSON, then frame number, tracks JSON, ... Returns 1, or 0 if the job is gone.
_STORE_ANALYTICS_LUA = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('DEL', KEYS[2])
for i = 2, #ARGV, 2 do
  redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 1])
end
redis.call('HSET', KEYS[1], 'analytics', ARGV[1])
return 1
"""

MB = 1 << 20



def stored_rules(record: dict[str, str]) -> tuple[Rule, ...]:
    """A job record's rules (none in a record older than rules)."""
    raw = record.get("rules")
    return decode_rules(raw) if raw else ()


def job_message_id(job_id: str, frame: int) -> str:
    """Id of one frame of one job in a type's queue (unique per job, frame and queue)."""
    return f"{job_id}:{frame}"


@dataclass(frozen=True)
class JobFrame:
    """What Redis holds about one frame of a job."""

    job: dict[str, Any] | None  # None: unknown job
    stored: bool
    jpeg: bytes | None  # only when asked for
    results: dict[str, Any]


class JobStore:
    """Job records, their frames and results in Redis."""

    def __init__(self, client: RedisClient) -> None:
        self.client = client
        self.pending = LeasedQueue.pending_jobs(client)
        self._update = client.register_script(_UPDATE_LUA)
        self._store_frame = client.register_script(_STORE_FRAME_LUA)
        self._store_result = client.register_script(_STORE_RESULT_LUA)
        self._store_analytics = client.register_script(_STORE_ANALYTICS_LUA)

    # ----- life cycle

    def create(self, request: JobRequest, now: float | None = None) -> str:
        """Record a job and queue it for a runner; returns its id."""
        job_id = "j" + secrets.token_hex(6)
        created = time.time() if now is None else now
        record = {"id": job_id, "name": request.name, "source": request.source,
                  "types": json.dumps(list(request.types)), "frame_step": request.frame_step,
                  "status": "queued", "created": created, "frames_read": 0,
                  "frames_total": -1, "error": "", "rules": encode_rules(request.rules)}
        # Record first, then the index (another hash slot in a Redis Cluster): an index entry
        # never names a job without a record, which the orphan sweep would remove.
        self.client.hset(keys.job(job_id), mapping=record)
        self.client.zadd(keys.jobs(), {job_id: created})
        self.pending.push([(job_id, job_id.encode())])
        return job_id

    def update(self, job_id: str, **fields: Any) -> bool:
        """Set fields of an existing job; False (and nothing written) if it was deleted."""
        args = [str(v) for kv in fields.items() for v in kv]
        return bool(self._update(keys=[keys.job(job_id)], args=args))

    def source(self, job_id: str) -> str:
        """The source as submitted, credentials included (``get`` shows it redacted)."""
        value = self.client.hget(keys.job(job_id), "source")
        return as_text(value) if value is not None else ""

    def delete(self, job_id: str) -> bool:
        """Remove a job, its frames, results and queued messages; False if unknown.

        The record goes first, in the same step as the frames and results: from then on the
        check-and-write scripts refuse every late frame or result, so the queues can then be
        cleaned of the job's messages once and for all.
        """
        raw = self.client.hget(keys.job(job_id), "types")
        if raw is None:
            return False
        types: list[str] = json.loads(raw)
        self.client.unlink(keys.job(job_id), keys.job_frames(job_id), keys.job_tracks(job_id),
                           *(keys.job_results(job_id, t) for t in types))
        self.client.zrem(keys.jobs(), job_id)
        self.discard_queued(job_id, types)
        self.pending.discard([job_id])
        return True

    def discard_queued(self, job_id: str, types: Iterable[str]) -> int:
        """Take the job's frames out of its types' queues (waiting or leased): the job was
        deleted, or it failed and they would only keep workers busy."""
        return sum(LeasedQueue.for_type(self.client, t).discard([job_id]) for t in types)

    def fail(self, job_id: str, error: str, types: Iterable[str]) -> bool:
        """Mark the job failed with ``error`` and drop its queued frames; what was stored (frames,
        results) stays until it is deleted. False if the job is gone."""
        if not self.update(job_id, status="failed", error=error):
            return False
        self.discard_queued(job_id, types)
        return True

    # ----- frames and results

    def store_frame(self, job_id: str, frame: int, jpeg: bytes, message_id: str,
                    messages: Sequence[tuple[LeasedQueue, bytes]]) -> bool:
        """Store frame ``frame`` with the job, then push ``message_id`` with each queue's
        message; False (nothing written) if the job no longer exists.

        Two steps, as the job and each type's queue are in different hash slots of a Redis
        Cluster. A job deleted between them leaves messages that workers take, whose results
        the job's scripts refuse, and that they acknowledge; a runner that dies between them
        leaves its lease to run out, and the next runner stores the frame again.
        """
        stored = self._store_frame(keys=[keys.job(job_id), keys.job_frames(job_id)],
                                   args=[frame, jpeg])
        if not stored:
            return False
        pipe = self.client.pipeline(transaction=False)
        for queue, body in messages:
            queue.push([(message_id, body)], pipe)
        pipe.execute()
        return True

    def frame(self, job_id: str, frame: int) -> bytes | None:
        value = self.client.hget(keys.job_frames(job_id), str(frame))
        return bytes(value) if value is not None else None

    def store_result(self, job_id: str, infer_type: str, frame: int, result_json: bytes,
                     pipe: redis.client.Pipeline) -> None:
        """Queue on ``pipe`` the storing of one result, done only if the job still exists."""
        run_script(self._store_result, [keys.job(job_id), keys.job_results(job_id, infer_type)],
                   [frame, result_json], pipe)

    def frame_results(self, job_id: str, frame: int, types: Iterable[str]) -> dict[str, Any]:
        """Every type's result JSON object for one frame (types without one are left out)."""
        types = list(types)
        pipe = self.client.pipeline(transaction=False)
        for t in types:
            pipe.hget(keys.job_results(job_id, t), str(frame))
        return {t: json.loads(v) for t, v in zip(types, pipe.execute(), strict=True)
                if v is not None}

    def result_frames(self, job_id: str, types: Iterable[str]) -> list[int]:
        """Frame numbers with a result of at least one type, ascending."""
        pipe = self.client.pipeline(transaction=False)
        for t in types:
            pipe.hkeys(keys.job_results(job_id, t))
        return sorted({int(k) for ks in pipe.execute() for k in ks})

    # ----- reading

    def get(self, job_id: str, analytics: bool = False) -> dict[str, Any] | None:
        """The job with its progress and derived status, or None if unknown; with
        ``analytics``, its counts and events too (None until they are computed)."""
        raw = self.client.hgetall(keys.job(job_id))
        if not raw:
            return None
        rec = {as_text(k): as_text(v) for k, v in raw.items()}
        types: list[str] = json.loads(rec["types"])
        pipe = self.client.pipeline(transaction=False)
        for t in types:
            pipe.hlen(keys.job_results(job_id, t))
        done = dict(zip(types, (int(n) for n in pipe.execute()), strict=True))
        total = int(rec["frames_total"])
        status = rec["status"]
        if status == "processing" and all(n >= total for n in done.values()):
            status = "done"
        expected = total if total >= 0 else int(rec["frames_read"])
        return {
            "id": job_id, "name": rec["name"], "source": redact_url(rec["source"]),
            "types": types,
            "frame_step": int(rec["frame_step"]), "status": status,
            "created": float(rec["created"]), "error": rec["error"] or None,
            "frames_total": total if total >= 0 else None,
            # The video had more frames than EI_MAX_JOB_FRAMES allows one job to keep.
            "truncated": rec.get("truncated") == "1",
            "frames_read": int(rec["frames_read"]),
            "frames_done": min(done.values()) if done else 0,
            "progress": {t: {"done": n, "total": expected} for t, n in done.items()},
            "fps": float(rec.get("fps") or 0) or None,
            "rules": [r.to_json() for r in stored_rules(rec)],
        } | (self._summary(rec.get("analytics")) if analytics else {})

    @staticmethod
    def _summary(raw: str | None) -> dict[str, Any]:
        if raw is None:
            return {"counts": None, "events": None, "events_total": None}
        summary: dict[str, Any] = json.loads(raw)
        return summary

    # ----- tracks, counts and events (core/jobanalytics.py)

    def analysed(self, job_id: str) -> dict[str, Any] | None:
        """The job with its counts and events: computed from its results the first time a done
        job is asked for, then kept with it. None if unknown."""
        job = self.get(job_id, analytics=True)
        if job is None or job["status"] != "done" or job["counts"] is not None:
            return job
        rules = rules_from_json({"rules": job["rules"]}, None)
        pipe = self.client.pipeline(transaction=False)
        for t in job["types"]:
            pipe.hvals(keys.job_results(job_id, t))
        results = dict(zip(job["types"], pipe.execute(), strict=True))
        self.store_analytics(job_id, analyse(results, rules, job["fps"] or 0.0))
        return self.get(job_id, analytics=True)

    def store_analytics(self, job_id: str, found: JobAnalytics) -> bool:
        """Keep a job's analytics with it; False (nothing written) if the job is gone."""
        args: list[Any] = [found.summary_json()]
        for frame, tracks in found.tracks.items():
            args += [frame, json.dumps(tracks, separators=(",", ":"))]
        return bool(self._store_analytics(keys=[keys.job(job_id), keys.job_tracks(job_id)],
                                          args=args))

    def read_frame(self, job_id: str, frame: int, jpeg: bool) -> JobFrame:
        """The job, whether ``frame`` is stored, its JPEG (if ``jpeg``) and every type's
        result for it."""
        job = self.get(job_id)
        if job is None:
            return JobFrame(None, False, None, {})
        if jpeg:
            data = self.frame(job_id, frame)
            stored = data is not None
        else:
            data = None
            stored = bool(self.client.hexists(keys.job_frames(job_id), str(frame)))
        results = self.frame_results(job_id, frame, job["types"]) if stored else {}
        return JobFrame(job, stored, data, results)

    def results_page(self, job_id: str, offset: int, limit: int) -> dict[str, Any] | None:
        """``GET /api/analysis/{id}/results``: frames with results in frame order, one page of
        them with every type's valid result; None for an unknown job."""
        job = self.get(job_id)
        if job is None:
            return None
        types: list[str] = job["types"]
        frames = self.result_frames(job_id, types)
        page = frames[offset:offset + limit]
        rows: list[dict[str, Any]] = []
        if page:
            fields = [str(n) for n in page]
            pipe = self.client.pipeline(transaction=False)
            for t in types:
                pipe.hmget(keys.job_results(job_id, t), fields)
            pipe.hmget(keys.job_tracks(job_id), fields)
            *stored, tracks = pipe.execute()
            by_type = dict(zip(types, stored, strict=True))
            for i, n in enumerate(page):
                results = {}
                for t in types:
                    raw = by_type[t][i]
                    parsed = parse_result(raw) if raw is not None else None
                    if parsed is not None:
                        results[t] = parsed[1]
                rows.append({"frame": n, "results": results,
                             "tracks": json.loads(tracks[i]) if tracks[i] else None})
        return {"id": job_id, "total": len(frames), "offset": offset, "limit": limit,
                "frames": rows}

    def recent(self, limit: int = 100, offset: int = 0) -> list[dict[str, Any]]:
        """Newest jobs first, skipping the ``offset`` newest."""
        ids = [as_text(i) for i in self.client.zrevrange(keys.jobs(), offset,
                                                          offset + limit - 1)]
        return [j for j in (self.get(i) for i in ids) if j is not None]

    def older_than(self, cutoff: float) -> list[str]:
        """Ids of jobs created before ``cutoff`` (epoch seconds)."""
        return [as_text(i) for i in self.client.zrangebyscore(keys.jobs(), "-inf", f"({cutoff}")]

    # ----- memory

    def frame_bytes(self) -> int:
        """Bytes of JPEG stored with all jobs (each job counts its own as it stores them)."""
        ids = self.client.zrange(keys.jobs(), 0, -1)
        pipe = self.client.pipeline(transaction=False)
        for i in ids:
            pipe.hget(keys.job(as_text(i)), "frame_bytes")
        return sum(int(v) for v in pipe.execute() if v is not None)

    def check_room(self, share: float) -> None:
        """StorageFull when job frames already take more than ``share`` of Redis' memory: its
        ``maxmemory``, or the host's memory when Redis has no limit (``share`` 0: no check)."""
        if share <= 0:
            return
        info = self.client.info("memory")
        limit = int(info.get("maxmemory") or 0)
        name = "maxmemory"
        if not limit:
            limit, name = int(info.get("total_system_memory") or 0), "the host's memory"
        used = self.frame_bytes()
        if limit and used > share * limit:
            raise StorageFull(
                f"job storage is full: analysis jobs hold {used / MB:.1f} MB of frames, more "
                f"than {share:.0%} of Redis' {name} ({limit / MB:.0f} MB, EI_JOB_MEMORY_SHARE); "
                f"delete finished jobs or prune old ones, then retry")
