"""Analysis jobs: whole videos analysed frame by frame, nothing lost.

Live frames may be trimmed from a full queue or dropped as stale; a job's frames may not. They
travel through a :class:`LeasedQueue`, the reliable-queue pattern with a visibility timeout:
taking a message *leases* it until a deadline instead of removing it, the taker acknowledges it
once its result is stored, and a lease that runs out (the taker was killed or hangs) puts the
message back at the head of the queue for another taker. Results are stored by frame number,
so a message processed twice (a slow taker whose lease ran out) overwrites its own result and
the counts stay exact.

:func:`parse_job_request` reads a submitted job; :class:`JobStore` keeps the job records
(request, status, progress), the analysed frames and their results. Keys are in :mod:`.keys`;
the flow is described in doc/analysis.md.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import redis

from . import keys
from .errors import InvalidMessage
from .redisconn import redact_url
from .result import parse_result

#: Lease the oldest ``count`` messages (after putting expired leases back at the head).
#: The server's clock sets deadlines, so takers with skewed clocks agree.
_LEASE_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1e6
local expired = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', now)
for i = #expired, 1, -1 do
  redis.call('ZREM', KEYS[3], expired[i])
  redis.call('LPUSH', KEYS[1], expired[i])
end
local deadline = now + tonumber(ARGV[1])
local out = {}
local want = tonumber(ARGV[2])
while #out < 2 * want do
  local id = redis.call('LPOP', KEYS[1])
  if not id then break end
  local body = redis.call('HGET', KEYS[2], id)
  if body then
    redis.call('ZADD', KEYS[3], deadline, id)
    out[#out + 1] = id
    out[#out + 1] = body
  end
end
return out
"""

#: Push back the deadline of leases still held (``XX``: never re-create an acknowledged one).
_EXTEND_LUA = """
local t = redis.call('TIME')
local deadline = tonumber(t[1]) + tonumber(t[2]) / 1e6 + tonumber(ARGV[1])
local n = 0
for i = 2, #ARGV do
  n = n + redis.call('ZADD', KEYS[1], 'XX', 'CH', deadline, ARGV[i])
end
return n
"""


#: HSET only if the job still exists, so a runner never resurrects a deleted job.
_UPDATE_LUA = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV))
return 1
"""


def _s(v: bytes | str) -> str:
    return v.decode() if isinstance(v, bytes) else v


class LeasedQueue:
    """A lossless FIFO with leases: a LIST of ids, a HASH of bodies, a ZSET of lease deadlines."""

    def __init__(self, client: redis.Redis, list_key: str, bodies_key: str,
                 leases_key: str) -> None:
        self.client = client
        self.keys = [list_key, bodies_key, leases_key]
        self._lease = client.register_script(_LEASE_LUA)
        self._extend = client.register_script(_EXTEND_LUA)

    @classmethod
    def for_type(cls, client: redis.Redis, infer_type: str) -> LeasedQueue:
        """The job-frame queue of one inference type."""
        return cls(client, keys.job_queue(infer_type), keys.job_queue_messages(infer_type),
                   keys.job_queue_leases(infer_type))

    @classmethod
    def pending_jobs(cls, client: redis.Redis) -> LeasedQueue:
        """Job ids waiting for an analysis runner."""
        base = keys.jobs_pending()
        return cls(client, base, f"{base}:msg", f"{base}:leased")

    def push(self, items: Sequence[tuple[str, bytes]],
             pipe: redis.client.Pipeline | None = None) -> None:
        """Append ``(id, body)`` messages in one round trip (ids are unique per message);
        on ``pipe`` (a MULTI pipeline) to share the round trip with other writes."""
        if not items:
            return
        target = pipe if pipe is not None else self.client.pipeline(transaction=True)
        for mid, body in items:
            target.hset(self.keys[1], mid, body)
            target.rpush(self.keys[0], mid)
        if pipe is None:
            target.execute()

    def lease(self, count: int, timeout: float) -> list[tuple[str, bytes]]:
        """Take up to ``count`` messages for ``timeout`` seconds; ack them before it runs out."""
        raw = self._lease(keys=self.keys, args=[timeout, count])
        return [(_s(raw[i]), raw[i + 1]) for i in range(0, len(raw), 2)]

    def extend(self, ids: Sequence[str], timeout: float) -> int:
        """Renew leases still held (a long task); returns how many were."""
        if not ids:
            return 0
        return int(self._extend(keys=[self.keys[2]], args=[timeout, *ids]))

    def release(self, ids: Sequence[str]) -> None:
        """Give leased messages back at once, at the head (a taker stopping cleanly)."""
        if not ids:
            return
        pipe = self.client.pipeline(transaction=True)
        pipe.zrem(self.keys[2], *ids)
        pipe.lpush(self.keys[0], *reversed(ids))
        pipe.execute()

    def ack(self, ids: Sequence[str], pipe: redis.client.Pipeline | None = None) -> None:
        """Done with these messages: forget them (on ``pipe`` to share a round trip)."""
        if not ids:
            return
        target = pipe if pipe is not None else self.client.pipeline(transaction=False)
        target.zrem(self.keys[2], *ids)
        target.hdel(self.keys[1], *ids)
        if pipe is None:
            target.execute()

    def discard(self, prefix: str) -> int:
        """Forget every message whose id starts with ``prefix`` (a deleted job's frames)."""
        doomed = [_s(k) for k, _ in self.client.hscan_iter(self.keys[1], match=f"{prefix}*")]
        if doomed:
            self.ack(doomed)
        return len(doomed)

    def waiting(self) -> int:
        """Messages not yet taken (leased ones are not counted)."""
        return int(self.client.llen(self.keys[0]))


# --------------------------------------------------------------------------------- job records

STATUSES = ("queued", "extracting", "processing", "done", "failed")
MAX_NAME = 120
#: URL schemes a job may read (through FFmpeg); anything else must be a media file.
URL_SCHEMES = ("rtsp", "rtsps", "http", "https")


def resolve_source(source: str, media_dir: Path) -> str:
    """What a runner opens for ``source``: the URL itself, or the file inside ``media_dir``.

    Paths are relative to the media directory and may not leave it (``..``, absolute paths and
    symlinks pointing out are refused), so an API client can only name what was put there.
    """
    if not isinstance(source, str) or not source or len(source) > 2048 \
            or any(ord(c) < 32 for c in source):
        raise InvalidMessage("source must be a non-empty path or URL without control characters")
    if "://" in source:
        parts = urlsplit(source)
        if parts.scheme.lower() not in URL_SCHEMES or not parts.hostname:
            raise InvalidMessage(f"source URL must be {', '.join(URL_SCHEMES)} with a host")
        return source
    base = media_dir.resolve()
    path = (base / source).resolve()
    if Path(source).is_absolute() or not path.is_relative_to(base):
        raise InvalidMessage(f"source {source!r} is outside the media directory")
    if not path.is_file():
        raise InvalidMessage(f"source {source!r} is not a file in the media directory")
    return str(path)


@dataclass(frozen=True)
class JobRequest:
    """What ``POST /api/analysis`` asks for; the value rules are checked here."""

    source: str  # a path relative to the media directory, or a URL
    types: tuple[str, ...]
    frame_step: int = 1
    name: str = ""

    def __post_init__(self) -> None:
        if not self.types:
            raise InvalidMessage("a job needs at least one inference type")
        for t in self.types:
            keys.check_type(t)
        if len(set(self.types)) != len(self.types):
            raise InvalidMessage("inference types repeat")
        if not isinstance(self.frame_step, int) or isinstance(self.frame_step, bool) \
                or not 1 <= self.frame_step <= 10000:
            raise InvalidMessage("frame_step must be an integer in 1..10000")
        if len(self.name) > MAX_NAME or any(ord(c) < 32 for c in self.name):
            raise InvalidMessage(f"name must be at most {MAX_NAME} printable characters")


JOB_FIELDS = ("source", "types", "frame_step", "name")


def _shown(value: Any) -> str:
    """A JSON value as an error message shows it: short, one line."""
    text = json.dumps(value, ensure_ascii=True)
    return text if len(text) <= 40 else text[:37] + "..."


def parse_job_request(body: bytes) -> JobRequest:
    """The job a ``POST /api/analysis`` body asks for; InvalidMessage naming the problem.

    Checks the body's shape and each field's JSON type here, and leaves the value rules to
    :class:`JobRequest` (type names, repeats, frame step range, name). Whether the types are
    known and the source exists need Redis and the media directory: see
    :func:`check_known_types` and :func:`resolve_source`.
    """
    try:
        data = json.loads(body)
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        raise InvalidMessage(f"the body is not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise InvalidMessage('the body must be a JSON object such as {"source": "video.mp4", '
                             '"types": ["people"]}')
    unknown = sorted(set(data) - set(JOB_FIELDS))
    if unknown:
        names = ", ".join(_shown(k) for k in unknown[:5]) + (", ..." if len(unknown) > 5 else "")
        raise InvalidMessage(f"unknown field(s) {names}: a job has {', '.join(JOB_FIELDS)}")
    source = data.get("source")
    if source is None or source == "":
        raise InvalidMessage("source is required: a path in the media directory or an "
                             "rtsp://, http:// or https:// URL")
    if not isinstance(source, str):
        raise InvalidMessage(f"source must be a string, not {_shown(source)}")
    types = data.get("types")
    if not isinstance(types, list) or not types or not all(isinstance(t, str) for t in types):
        raise InvalidMessage(f"types must be a non-empty list of inference type names such as "
                             f'["people"], not {_shown(types)}')
    frame_step = data.get("frame_step", 1)
    if isinstance(frame_step, bool) or not isinstance(frame_step, int):
        raise InvalidMessage(f"frame_step must be an integer >= 1 (analyse every n-th frame), "
                             f"not {_shown(frame_step)}")
    name = data.get("name", "")
    if not isinstance(name, str):
        raise InvalidMessage(f"name must be a string, not {_shown(name)}")
    return JobRequest(source=source, types=tuple(types), frame_step=frame_step, name=name)


def check_known_types(types: Iterable[str], known: Collection[str]) -> None:
    """InvalidMessage unless every type is in ``known`` (built in or has had a worker)."""
    unknown = [t for t in types if t not in known]
    if unknown:
        raise InvalidMessage(f"unknown inference type(s) {', '.join(map(repr, unknown))}: "
                             f"known types are {', '.join(sorted(known))}")


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

    def __init__(self, client: redis.Redis) -> None:
        self.client = client
        self.pending = LeasedQueue.pending_jobs(client)
        self._update = client.register_script(_UPDATE_LUA)

    # ----- life cycle

    def create(self, request: JobRequest, now: float | None = None) -> str:
        """Record a job and queue it for a runner; returns its id."""
        job_id = "j" + secrets.token_hex(6)
        created = time.time() if now is None else now
        record = {"id": job_id, "name": request.name, "source": request.source,
                  "types": json.dumps(list(request.types)), "frame_step": request.frame_step,
                  "status": "queued", "created": created, "frames_read": 0,
                  "frames_total": -1, "error": ""}
        pipe = self.client.pipeline(transaction=True)
        pipe.hset(keys.job(job_id), mapping=record)
        pipe.zadd(keys.jobs(), {job_id: created})
        pipe.execute()
        self.pending.push([(job_id, job_id.encode())])
        return job_id

    def update(self, job_id: str, **fields: Any) -> bool:
        """Set fields of an existing job; False (and nothing written) if it was deleted."""
        args = [str(v) for kv in fields.items() for v in kv]
        return bool(self._update(keys=[keys.job(job_id)], args=args))

    def source(self, job_id: str) -> str:
        """The source as submitted, credentials included (``get`` shows it redacted)."""
        value = self.client.hget(keys.job(job_id), "source")
        return _s(value) if value is not None else ""

    def exists(self, job_id: str) -> bool:
        return bool(self.client.exists(keys.job(job_id)))

    def delete(self, job_id: str) -> bool:
        """Remove a job, its frames, results and queued messages; False if unknown."""
        record = self.get(job_id)
        if record is None:
            return False
        names = [keys.job(job_id), keys.job_frames(job_id),
                 *(keys.job_results(job_id, t) for t in record["types"])]
        pipe = self.client.pipeline(transaction=True)
        pipe.delete(*names)
        pipe.zrem(keys.jobs(), job_id)
        pipe.execute()
        for t in record["types"]:
            LeasedQueue.for_type(self.client, t).discard(f"{job_id}:")
        self.pending.ack([job_id])
        return True

    # ----- frames and results

    def store_frame(self, job_id: str, frame: int, jpeg: bytes,
                    pipe: redis.client.Pipeline) -> None:
        pipe.hset(keys.job_frames(job_id), str(frame), jpeg)

    def frame(self, job_id: str, frame: int) -> bytes | None:
        value = self.client.hget(keys.job_frames(job_id), str(frame))
        return bytes(value) if value is not None else None

    def store_result(self, job_id: str, infer_type: str, frame: int, result_json: bytes,
                     pipe: redis.client.Pipeline) -> None:
        pipe.hset(keys.job_results(job_id, infer_type), str(frame), result_json)

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

    def get(self, job_id: str) -> dict[str, Any] | None:
        """The job with its progress and derived status, or None if unknown."""
        raw = self.client.hgetall(keys.job(job_id))
        if not raw:
            return None
        rec = {_s(k): _s(v) for k, v in raw.items()}
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
        }

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
            by_type = dict(zip(types, pipe.execute(), strict=True))
            for i, n in enumerate(page):
                results = {}
                for t in types:
                    raw = by_type[t][i]
                    parsed = parse_result(raw) if raw is not None else None
                    if parsed is not None:
                        results[t] = parsed[1]
                rows.append({"frame": n, "results": results})
        return {"id": job_id, "total": len(frames), "offset": offset, "limit": limit,
                "frames": rows}

    def recent(self, limit: int = 100) -> list[dict[str, Any]]:
        """Newest jobs first."""
        ids = [_s(i) for i in self.client.zrevrange(keys.jobs(), 0, limit - 1)]
        return [j for j in (self.get(i) for i in ids) if j is not None]

    def older_than(self, cutoff: float) -> list[str]:
        """Ids of jobs created before ``cutoff`` (epoch seconds)."""
        return [_s(i) for i in self.client.zrangebyscore(keys.jobs(), "-inf", f"({cutoff}")]
