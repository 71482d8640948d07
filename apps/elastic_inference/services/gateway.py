"""``ei gateway``: the dashboard, the REST API, MJPEG viewers and the same-origin ``/ws`` proxy.

Core's Redis calls are synchronous, so every one runs in a small thread pool (never on the
event loop); snapshot annotation (JPEG decode, draw, encode) runs there too. MJPEG viewers
block in ``XREAD`` for their stream's next frame, so they get a pool of their own (a thread
per viewer at most) and never starve the API. Every error is JSON ``{"error": message}``; a
Redis outage answers 503 and the gateway keeps serving, recovering as soon as Redis answers
again (redis-py reconnects its pool by itself). Routes are described in doc/api.md.

Analysis jobs (``/api/analysis``, doc/analysis.md) are validated here and recorded through
:class:`~elastic_inference.core.jobs.JobStore`; sources are checked against the media
directory (``EI_MEDIA_DIR``), the same one the ``ei analysis`` runners read.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import re
import time
import unicodedata
from collections import Counter, deque
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import redis
import tornado.web
import tornado.websocket
from tornado.httpclient import HTTPClientError
from tornado.httpserver import HTTPServer
from tornado.ioloop import IOLoop
from tornado.iostream import StreamClosedError
from tornado.netutil import bind_sockets

from ..core import keys
from ..core.broker import OutputBroker, OutputEntry
from ..core.errors import InvalidMessage
from ..core.jobs import JobRequest, JobStore, resolve_source
from ..core.keys import TYPE_RE, check_job_id, check_stream_id
from ..core.metrics import GatewayMetrics
from ..core.queue import FrameQueue
from ..core.redisconn import REDIS_DOWN_ERRORS, connect, redact_url
from ..core.registry import Member, StreamRegistry, WorkerRegistry, worker_types
from ..core.result import Detection, Result, parse_json, result_from_json
from ..core.runtime import LIVE_SOCKET_BUFFER, ServiceRuntime, cap_socket_buffers, setup_logging
from ..core.settings import GatewaySettings, parse_settings
from ..engine.annotate import annotate_jpeg
from ..engine.models import INFER_TYPES

log = logging.getLogger(__name__)

T = TypeVar("T")

STATIC_DIR = Path(__file__).resolve().parent / "static"
#: Entries of ``ei:out:{stream}`` examined for a snapshot: enough to hold every type's result
#: for the newest frame when several types publish interleaved.
SNAPSHOT_SCAN = 8
SNAPSHOT_QUALITY = 80
REDIS_DOWN_MESSAGE = "Redis is unavailable; retry shortly"

# History queries (/results, /counts)
DEFAULT_RANGE_S = 300.0
MAX_RANGE_S = 24 * 3600.0
#: Epoch seconds beyond this are refused (year 5138): a Redis stream id must stay in range.
MAX_EPOCH_S = 1e11
DEFAULT_LIMIT = 1000
MAX_LIMIT = 10_000
MAX_LABEL_CHARS = 64
DEFAULT_STEP_S = 10.0
MIN_STEP_S, MAX_STEP_S = 1.0, 3600.0
MAX_BUCKETS = 1000
#: Results read from Redis per round trip while scanning a range.
HISTORY_PAGE = 1000

# MJPEG
DEFAULT_MJPEG_FPS = 10.0
MIN_MJPEG_FPS, MAX_MJPEG_FPS = 1.0, 30.0
#: Longest blocking XREAD of a viewer: bounds how late it notices a disconnect or shutdown.
MJPEG_BLOCK_MS = 500
#: Most new entries a viewer reads at once; a full read means a backlog, skipped.
MJPEG_READ = 32
MJPEG_BOUNDARY = "eiframe"
#: How long shutdown waits for viewers and proxied websockets to finish.
SHUTDOWN_WAIT_S = 3.0

# Websocket proxy
WS_PATH = "/ws"
#: Browsers send only small control messages (the websocket service's own limit).
WS_MAX_INCOMING = 64 * 1024
#: A frame message: an 8 MiB JPEG at most plus its header.
WS_MAX_UPSTREAM = 16 * 1024 * 1024
WS_CONNECT_TIMEOUT_S = 5.0
WS_PING_S = 20.0
#: Close codes a server may send on (RFC 6455 reserves 1005, 1006 and 1015 for local use).
_RELAYABLE_CLOSE = frozenset({1000, 1001, 1008, 1011, 1012, 1013, 1014})

#: Vite names files under assets/ by content hash, so they never change under one name.
IMMUTABLE = "public, max-age=31536000, immutable"

# Analysis jobs
#: Largest ``POST /api/analysis`` body; a job request is a few hundred bytes.
MAX_JOB_BODY = 16 * 1024
JOB_FIELDS = ("source", "types", "frame_step", "name")
DEFAULT_JOBS_LIMIT, MAX_JOBS_LIMIT = 100, 1000
DEFAULT_PAGE, MAX_PAGE = 100, 1000
MAX_OFFSET = 10**9
FRAME_RE = re.compile(r"^(?:0|[1-9][0-9]{0,8})$")


def content_security_policy(websocket_url: str = "") -> str:
    """The CSP of every response: own origin only, no inline or eval'd script or style.

    ``'self'`` covers websockets to the page's own origin (the ``/ws`` proxy, or an Ingress
    routing ``/ws``); an absolute ``EI_WEBSOCKET_URL`` on another origin is added to
    ``connect-src``.
    """
    connect = "'self'"
    if websocket_url:
        parts = urlsplit(websocket_url)
        if parts.scheme in ("ws", "wss") and parts.netloc:
            connect += f" {parts.scheme}://{parts.netloc}"
    return ("default-src 'self'; script-src 'self'; style-src 'self'; "
            "img-src 'self' data: blob:; "
            f"connect-src {connect}; object-src 'none'; base-uri 'none'; "
            "frame-ancestors 'none'; form-action 'self'")


# ---------------------------------------------------------------------------------------------
# Pure helpers (unit-tested without Redis)


def stream_json(member: Member) -> dict[str, Any]:
    """A registry member as the API shows it: its details plus ``id`` and ``last_seen``."""
    return {**member.info, "id": member.id, "last_seen": member.last_seen}


@dataclass(frozen=True)
class Snapshot:
    """The frame to show for a stream and every type's detections for that same frame."""

    seq: int
    jpeg: bytes
    detections: tuple[Detection, ...]
    types: tuple[str, ...]


def parse_result(raw: bytes | str) -> tuple[Result, dict[str, Any]] | None:
    """A valid result JSON v1 as (Result, the JSON object, parsed once); ``None`` otherwise."""
    try:
        data = parse_json(raw)
        return result_from_json(data), data
    except InvalidMessage as exc:
        log.debug("skipping an invalid result: %s", exc)
        return None


def _valid(entries: Sequence[OutputEntry]) -> list[tuple[OutputEntry, Result, dict[str, Any]]]:
    """(entry, Result, raw JSON) for entries whose result validates; others are skipped."""
    out = []
    for entry in entries:
        parsed = parse_result(entry.result)
        if parsed is not None:
            out.append((entry, *parsed))
    return out


def pick_snapshot(entries: Sequence[OutputEntry]) -> Snapshot | None:
    """Newest seq among ``entries`` (newest first) with all types' detections for it merged.

    One frame is pushed to every type of its stream, so results with the same seq describe
    the same picture; their boxes belong on one image. Without a valid result the newest
    frame is shown bare; with no entries at all there is nothing to show.
    """
    if not entries:
        return None
    valid = _valid(entries)
    if not valid:
        return Snapshot(seq=-1, jpeg=entries[0].jpeg, detections=(), types=())
    seq = max(r.seq for _, r, _ in valid)
    same = [(e, r) for e, r, _ in valid if r.seq == seq]
    seen: set[str] = set()
    detections: list[Detection] = []
    for _, r in same:  # newest first: a type that published twice counts once
        if r.type not in seen:
            seen.add(r.type)
            detections.extend(r.detections)
    jpeg = next((e.jpeg for e, _ in same if e.jpeg), entries[0].jpeg)
    return Snapshot(seq=seq, jpeg=jpeg, detections=tuple(detections), types=tuple(sorted(seen)))


def render_snapshot(snap: Snapshot) -> bytes:
    """The snapshot's JPEG with its boxes drawn (sync, CPU); ValueError if it is no JPEG."""
    if not snap.detections:
        return snap.jpeg
    return annotate_jpeg(snap.jpeg, snap.detections, SNAPSHOT_QUALITY)


def latest_by_type(entries: Sequence[OutputEntry]) -> dict[str, dict[str, Any]]:
    """The newest valid result JSON object of each type among ``entries`` (newest first)."""
    out: dict[str, dict[str, Any]] = {}
    for _, result, raw in _valid(entries):
        out.setdefault(result.type, raw)
    return dict(sorted(out.items()))


def _number(info: Mapping[str, Any], name: str) -> float:
    """A numeric heartbeat field, 0 when missing or malformed (older workers lack some)."""
    value = info.get(name)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return 0.0
    return float(value) if math.isfinite(value) else 0.0


def summarize_workers(infos: Sequence[Mapping[str, Any]], queue_length: int) -> dict[str, Any]:
    """A type's totals from its workers' heartbeats (design.md section 5).

    Each worker publishes its share of the type's drops and its scale ratio, so sums give the
    type's drop rate and its demand in workers; ``desired_workers`` is what an HPA on
    ``ei_scale_ratio`` with ``averageValue: 1`` would ask for, at least 1 while frames wait or
    flow. Capacity is averaged over the workers that have measured it (0 = never busy).
    """
    infer_fps = sum(_number(i, "infer_fps") for i in infos)
    drop_fps = sum(_number(i, "drop_fps") for i in infos)
    ratio = sum(_number(i, "scale_ratio") for i in infos)
    capacities = [c for c in (_number(i, "capacity_fps") for i in infos) if c > 0]
    demand = ratio > 0 or infer_fps > 0 or drop_fps > 0 or queue_length > 0
    # Rounded first: float noise in a sum of rounded ratios must not ask for one more pod.
    desired = max(1, math.ceil(round(ratio, 3))) if demand else 0

    def distinct(name: str) -> list[str]:
        return sorted({v for i in infos if isinstance(v := i.get(name), str) and v})

    return {"infer_fps": round(infer_fps, 2), "drop_fps": round(drop_fps, 2),
            "scale_ratio": round(ratio, 3), "desired_workers": desired,
            "capacity_fps": round(sum(capacities) / len(capacities), 2) if capacities else 0.0,
            "models": distinct("model"), "devices": distinct("device")}


def collect_status(client: redis.Redis) -> dict[str, Any]:
    """Queues, drops, workers and their totals per inference type, plus the live stream count.

    Types are those that ever had a worker plus those live streams feed, so a type whose
    frames pile up with no worker at all still shows. Sync: runs in the pool.
    """
    streams = StreamRegistry(client).members()
    types = set(worker_types(client))
    for member in streams:
        declared = member.info.get("types")
        if isinstance(declared, list):
            types.update(t for t in declared if isinstance(t, str) and TYPE_RE.match(t))
    rows = []
    for infer_type in sorted(types):
        stats = FrameQueue(client, infer_type).stats()
        workers = WorkerRegistry(client, infer_type).members()
        rows.append({
            "type": infer_type,
            "queue": {"length": stats.length, "pushed": stats.pushed,
                      "dropped": stats.dropped, "drops": stats.drops},
            "workers": [{**w.info, "id": w.id, "last_seen": w.last_seen} for w in workers],
            **summarize_workers([w.info for w in workers], stats.length),
        })
    return {"streams": len(streams), "types": rows}


# -- query parameters --------------------------------------------------------------------------


class ParamError(ValueError):
    """An invalid query parameter; the message names it and is answered with 400."""


def parse_number(name: str, raw: str | None, default: float, low: float,
                 high: float) -> float:
    """A finite number in ``low..high``; ``default`` when absent or empty."""
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise ParamError(f"invalid {name} {raw[:40]!r}: must be a number")
    if not low <= value <= high:
        raise ParamError(f"invalid {name} {raw[:40]!r}: must be between {low:g} and {high:g}")
    return value


def parse_range(since_raw: str | None, until_raw: str | None,
                now: float) -> tuple[float, float]:
    """``(since, until)`` in epoch seconds: until defaults to now, since to 5 minutes before
    it; since must not be after until and the range must not exceed 24 hours."""
    until = parse_number("until", until_raw, now, 0.0, MAX_EPOCH_S)
    since = parse_number("since", since_raw, max(0.0, until - DEFAULT_RANGE_S), 0.0,
                         MAX_EPOCH_S)
    if since > until:
        raise ParamError(f"invalid since {since:.3f}: it is after until {until:.3f}")
    if until - since > MAX_RANGE_S:
        raise ParamError(f"invalid since {since:.3f}: the range to until ({until - since:.0f} "
                         f"s) exceeds {MAX_RANGE_S:.0f} s (24 h)")
    return since, until


def parse_int(name: str, raw: str | None, default: int, low: int, high: int) -> int:
    """An integer in ``low..high``; ``default`` when absent or empty."""
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError as exc:
        raise ParamError(f"invalid {name} {raw[:40]!r}: must be an integer") from exc
    if not low <= value <= high:
        raise ParamError(f"invalid {name} {value}: must be between {low} and {high}")
    return value


def parse_limit(raw: str | None) -> int:
    """How many results at most: an integer in 1..10000, default 1000."""
    return parse_int("limit", raw, DEFAULT_LIMIT, 1, MAX_LIMIT)


def parse_label(raw: str | None) -> str | None:
    """An optional detection label: at most 64 characters, none of them control characters."""
    if raw is None or raw == "":
        return None
    if len(raw) > MAX_LABEL_CHARS:
        raise ParamError(f"invalid label: longer than {MAX_LABEL_CHARS} characters")
    if any(unicodedata.category(c) == "Cc" for c in raw):
        raise ParamError("invalid label: contains control characters")
    return raw


def bucket_count(since: float, until: float, step: float) -> int:
    """Buckets of ``step`` seconds covering ``since..until`` (at least one)."""
    return max(1, math.ceil((until - since) / step))


def parse_step(raw: str | None, since: float, until: float) -> float:
    """Bucket width in seconds: 1..3600, default 10, and at most 1000 buckets in the range."""
    step = parse_number("step", raw, DEFAULT_STEP_S, MIN_STEP_S, MAX_STEP_S)
    n = bucket_count(since, until, step)
    if n > MAX_BUCKETS:
        raise ParamError(f"invalid step {step:g}: {n} buckets over {until - since:.0f} s; at "
                         f"most {MAX_BUCKETS} (use a step of at least "
                         f"{math.ceil((until - since) / MAX_BUCKETS)} s)")
    return step


def parse_fps(raw: str | None) -> float:
    """MJPEG frame rate cap: 1..30 frames per second, default 10."""
    return parse_number("fps", raw, DEFAULT_MJPEG_FPS, MIN_MJPEG_FPS, MAX_MJPEG_FPS)


# -- analysis jobs ----------------------------------------------------------------------------


def _shown(value: Any) -> str:
    """A JSON value as an error message shows it: short, one line."""
    text = json.dumps(value, ensure_ascii=True)
    return text if len(text) <= 40 else text[:37] + "..."


def parse_job_request(body: bytes) -> JobRequest:
    """The job a ``POST /api/analysis`` body asks for; InvalidMessage naming the problem.

    Checks the body's shape and each field's JSON type here, and leaves the value rules to
    :class:`JobRequest` (type names, repeats, frame step range, name). Whether the types are
    known and the source exists need Redis and the media directory: see
    :func:`check_known_types` and :func:`~elastic_inference.core.jobs.resolve_source`.
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
    """InvalidMessage unless every type is built in or has had a worker."""
    unknown = [t for t in types if t not in known]
    if unknown:
        raise InvalidMessage(f"unknown inference type(s) {', '.join(map(repr, unknown))}: "
                             f"known types are {', '.join(sorted(known))}")


def known_types(client: redis.Redis) -> set[str]:
    """The built-in inference types plus every type that has had a worker (sync)."""
    return set(INFER_TYPES) | set(worker_types(client))


def parse_frame_number(raw: str) -> int:
    """A frame number from a path: 0, 1, 2, ... (decimal digits, no sign, below 10^9)."""
    if not FRAME_RE.match(raw):
        raise ParamError(f"invalid frame number {raw[:40]!r}: must be a whole number "
                         f"0, 1, 2, ...")
    return int(raw)


def frame_view(frame: int, jpeg: bytes,
               results: Mapping[str, Any]) -> tuple[Snapshot, dict[str, dict[str, Any]]]:
    """A job frame with every type's valid result: the snapshot to draw and the results.

    ``results`` maps a type to its parsed result JSON (as JobStore.frame_results returns);
    an invalid one is left out of both, as the live endpoints skip invalid results.
    """
    valid: dict[str, dict[str, Any]] = {}
    detections: list[Detection] = []
    for infer_type, data in sorted(results.items()):
        try:
            result = result_from_json(data)
        except InvalidMessage as exc:
            log.debug("job frame %d: skipping an invalid %s result: %s", frame, infer_type, exc)
            continue
        valid[infer_type] = data
        detections.extend(result.detections)
    return Snapshot(seq=frame, jpeg=jpeg, detections=tuple(detections),
                    types=tuple(valid)), valid


def job_results_page(client: redis.Redis, job_id: str, offset: int,
                     limit: int) -> dict[str, Any] | None:
    """``GET /api/analysis/{id}/results``: frames with results in frame order, one page of
    them with every type's valid result; None for an unknown job. Sync: runs in the pool."""
    store = JobStore(client)
    job = store.get(job_id)
    if job is None:
        return None
    types: list[str] = job["types"]
    frames = store.result_frames(job_id, types)
    page = frames[offset:offset + limit]
    rows: list[dict[str, Any]] = []
    if page:
        fields = [str(n) for n in page]
        pipe = client.pipeline(transaction=False)
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


@dataclass(frozen=True)
class JobFrame:
    """What Redis holds about one frame of a job."""

    job: dict[str, Any] | None  # None: unknown job
    stored: bool
    jpeg: bytes | None  # only when asked for
    results: dict[str, Any]


def read_job_frame(client: redis.Redis, job_id: str, frame: int, jpeg: bool) -> JobFrame:
    """The job, whether ``frame`` is stored, its JPEG (if ``jpeg``) and every type's
    result for it. Sync: runs in the pool."""
    store = JobStore(client)
    job = store.get(job_id)
    if job is None:
        return JobFrame(None, False, None, {})
    if jpeg:
        data = store.frame(job_id, frame)
        stored = data is not None
    else:
        data = None
        stored = bool(client.hexists(keys.job_frames(job_id), str(frame)))
    results = store.frame_results(job_id, frame, job["types"]) if stored else {}
    return JobFrame(job, stored, data, results)


def create_job(client: redis.Redis, request: JobRequest) -> dict[str, Any] | None:
    """Record the job and return it as ``GET /api/analysis/{id}`` shows it (sync)."""
    store = JobStore(client)
    return store.get(store.create(request))


def get_job(client: redis.Redis, job_id: str) -> dict[str, Any] | None:
    return JobStore(client).get(job_id)


def list_jobs(client: redis.Redis, limit: int) -> list[dict[str, Any]]:
    return JobStore(client).recent(limit)


def delete_job(client: redis.Redis, job_id: str) -> bool:
    return JobStore(client).delete(job_id)


# -- history ----------------------------------------------------------------------------------


def entry_seconds(entry_id: str) -> float:
    """The publish time of a Redis stream entry id (``<ms>-<n>``), in epoch seconds."""
    return int(entry_id.split("-", 1)[0]) / 1000.0


def only_label(result: dict[str, Any], label: str | None) -> dict[str, Any] | None:
    """``result`` with its detections restricted to ``label``; ``None`` when none is left.

    ``result`` must have been validated (its detections are objects with a label).
    """
    if label is None:
        return result
    kept = [d for d in result["detections"] if d["label"] == label]
    return {**result, "detections": kept} if kept else None


class LabelBuckets:
    """Per time bucket and label, the most detections of that label in one result.

    "How many are in view": the largest count in a single frame, not a sum over frames (which
    would grow with the frame rate). Buckets start at ``since + k * step``.
    """

    def __init__(self, since: float, until: float, step: float) -> None:
        self.since, self.step = since, step
        self.n = bucket_count(since, until, step)
        self.buckets: dict[int, dict[str, int]] = {}

    def add(self, t: float, labels: Iterable[str]) -> None:
        """One result published at ``t`` with detections of ``labels`` (repeats count)."""
        k = min(self.n - 1, max(0, int((t - self.since) // self.step)))
        bucket = self.buckets.setdefault(k, {})
        for label, n in Counter(labels).items():
            bucket[label] = max(bucket.get(label, 0), n)

    def series(self) -> dict[str, list[list[float]]]:
        """``{label: [[bucket start, n], ...]}``; buckets without results are left out, and a
        label absent from a bucket that has results counts 0 there."""
        labels = sorted({label for b in self.buckets.values() for label in b})
        ks = sorted(self.buckets)
        return {label: [[round(self.since + k * self.step, 3), self.buckets[k].get(label, 0)]
                        for k in ks] for label in labels}


def query_results(broker: OutputBroker, stream: str, since: float, until: float, limit: int,
                  label: str | None) -> tuple[list[dict[str, Any]], bool]:
    """The newest ``limit`` valid results in the range (with ``label``), oldest first, and
    whether older matching ones were left out. Sync: runs in the pool."""
    newest_first: list[dict[str, Any]] = []
    after = ""
    while page := broker.history(stream, since, until, HISTORY_PAGE, after=after, reverse=True):
        for _, raw in page:
            parsed = parse_result(raw)
            kept = only_label(parsed[1], label) if parsed is not None else None
            if kept is None:
                continue
            if len(newest_first) == limit:
                return newest_first[::-1], True
            newest_first.append(kept)
        after = page[-1][0]
    return newest_first[::-1], False


def query_counts(broker: OutputBroker, stream: str, since: float, until: float,
                 step: float) -> tuple[dict[str, list[list[float]]], bool]:
    """Label series of the range (see :class:`LabelBuckets`) and whether any result was
    found, read page by page. Sync: runs in the pool."""
    buckets = LabelBuckets(since, until, step)
    found = False
    after = ""
    while page := broker.history(stream, since, until, HISTORY_PAGE, after=after):
        found = True
        for entry_id, raw in page:
            parsed = parse_result(raw)
            if parsed is not None:
                buckets.add(entry_seconds(entry_id), (d.label for d in parsed[0].detections))
        after = page[-1][0]
    return buckets.series(), found


# -- MJPEG ------------------------------------------------------------------------------------


def mjpeg_part(jpeg: bytes) -> bytes:
    """One part of a ``multipart/x-mixed-replace`` body."""
    head = (f"--{MJPEG_BOUNDARY}\r\nContent-Type: image/jpeg\r\n"
            f"Content-Length: {len(jpeg)}\r\n\r\n").encode("ascii")
    return b"".join((head, jpeg, b"\r\n"))


@dataclass
class MjpegFollower:
    """Follows one stream's live buffer for one MJPEG viewer; its calls run in a pool thread.

    It keeps the newest few entries itself, so each entry (JPEG included) crosses from Redis
    once, as new, instead of on every frame; after a backlog it jumps to the newest entries
    rather than replaying old ones. The first call shows the current frame at once.
    """

    broker: OutputBroker
    stream: str
    cursor: str = ""  # "" until the window is filled
    window: deque[OutputEntry] = field(default_factory=lambda: deque(maxlen=SNAPSHOT_SCAN))
    shown: tuple[int, tuple[str, ...], str] | None = None

    def _catch_up(self, block_ms: int) -> bool:
        """Bring the window up to date; False when nothing new came within ``block_ms``."""
        if self.cursor:
            new = self.broker.read({self.stream: self.cursor}, block_ms=block_ms,
                                   count=MJPEG_READ)
            if not new:
                return False
            if len(new) < MJPEG_READ:
                self.window.extend(new)
                self.cursor = new[-1].entry_id
                return True
            # More may wait behind these: skip to the newest instead.
        elif not self.broker.read({self.stream: "0-0"}, block_ms=block_ms, count=1):
            return False  # no output yet
        newest = self.broker.latest(self.stream, SNAPSHOT_SCAN)
        if not newest:
            return False
        self.window.clear()
        self.window.extend(reversed(newest))
        self.cursor = newest[0].entry_id
        return True

    def next_frame(self, block_ms: int) -> tuple[int, bytes] | None:
        """``(seq, annotated JPEG)`` of the newest frame once something new arrived; ``None``
        after ``block_ms`` without news, or when the news does not change the picture.

        A frame is new when its seq is, or when more types' boxes have arrived for it (types
        publish their results for one frame at different moments).
        """
        if not self._catch_up(block_ms):
            return None
        entries = list(reversed(self.window))
        snap = pick_snapshot(entries)
        if snap is None:
            return None
        # A bare frame (no valid result) has no seq: its entry id tells frames apart.
        key = (snap.seq, snap.types, entries[0].entry_id if snap.seq < 0 else "")
        if key == self.shown:
            return None
        self.shown = key
        try:
            return snap.seq, render_snapshot(snap)
        except ValueError as exc:
            log.debug("mjpeg %s: frame seq %d skipped: %s", self.stream, snap.seq, exc)
            return None


# ---------------------------------------------------------------------------------------------
# Handlers


class RedisHealth:
    """Logs a Redis outage once and counts the recovery; touched only on the event loop."""

    def __init__(self, metrics: GatewayMetrics | None) -> None:
        self.metrics = metrics
        self.down = False

    def failed(self, exc: BaseException) -> None:
        if not self.down:
            log.warning("gateway: Redis unavailable (%s); answering 503 until it is back", exc)
            self.down = True

    def ok(self) -> None:
        if self.down:
            log.info("gateway: Redis reachable again")
            self.down = False
            if self.metrics is not None:
                self.metrics.reconnects.inc()


@dataclass
class GatewayContext:
    """Everything handlers share; one per application."""

    client: redis.Redis
    executor: ThreadPoolExecutor
    metrics: GatewayMetrics | None
    websocket_url: str
    csp: str
    health: RedisHealth
    websocket_upstream: str = ""
    max_mjpeg_clients: int = 20
    max_proxy_clients: int = 200
    #: Where analysis-job sources are looked up (EI_MEDIA_DIR), as the runners do.
    media_dir: Path = Path("media")
    broker: OutputBroker = field(init=False)
    registry: StreamRegistry = field(init=False)
    #: Blocking reads of MJPEG viewers: one thread each at most, apart from the API's pool.
    follow_pool: ThreadPoolExecutor = field(init=False)
    mjpeg_clients: int = field(init=False, default=0)
    proxies: set[WebsocketProxyHandler] = field(init=False, default_factory=set)
    stopping: asyncio.Event = field(init=False, default_factory=asyncio.Event)

    def __post_init__(self) -> None:
        self.broker = OutputBroker(self.client)
        self.registry = StreamRegistry(self.client)
        self.follow_pool = ThreadPoolExecutor(max_workers=self.max_mjpeg_clients,
                                              thread_name_prefix="gateway-mjpeg")

    def stream_known(self, stream: str, key: str) -> bool:
        """Whether ``stream`` is live or Redis still holds its ``key`` (sync)."""
        return stream in self.registry.ids() or bool(self.client.exists(key))

    async def wait_stopping(self, timeout: float) -> bool:
        """Sleep up to ``timeout`` seconds; True as soon as the gateway is shutting down."""
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self.stopping.wait(), timeout)
        return self.stopping.is_set()

    async def shutdown(self) -> None:
        """End MJPEG responses and proxied websockets (1001), waiting a bounded time."""
        self.stopping.set()
        for proxy in list(self.proxies):
            proxy.close(1001, "gateway shutting down")
        deadline = time.monotonic() + SHUTDOWN_WAIT_S
        while (self.mjpeg_clients or self.proxies) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        self.follow_pool.shutdown(wait=False, cancel_futures=True)


def _security_headers(handler: tornado.web.RequestHandler, csp: str) -> None:
    handler.set_header("Content-Security-Policy", csp)
    handler.set_header("X-Content-Type-Options", "nosniff")
    handler.set_header("X-Frame-Options", "DENY")
    handler.set_header("Referrer-Policy", "no-referrer")


def _write_json_error(handler: tornado.web.RequestHandler, status_code: int,
                      kwargs: dict[str, Any]) -> None:
    """Replace Tornado's HTML error page with ``{"error": message}``."""
    message = handler._reason
    exc_info = kwargs.get("exc_info")
    if exc_info is not None:
        exc = exc_info[1]
        if isinstance(exc, tornado.web.HTTPError) and exc.log_message:
            message = exc.log_message % exc.args if exc.args else exc.log_message
        elif not isinstance(exc, tornado.web.HTTPError):
            message = "internal server error"
    handler.clear_header("Content-Disposition")
    handler.set_header("Content-Type", "application/json; charset=UTF-8")
    handler.set_header("Cache-Control", "no-store")
    handler.finish(json.dumps({"error": message}))


class SecureHandler(tornado.web.RequestHandler):
    """What every handler shares: security headers and JSON errors."""

    def set_default_headers(self) -> None:
        _security_headers(self, self.application.settings["ei_csp"])

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        _write_json_error(self, status_code, kwargs)

    def log_exception(self, typ: Any, value: BaseException | None, tb: Any) -> None:
        """HTTPErrors are answers, already counted and logged per request; log only bugs."""
        if isinstance(value, tornado.web.HTTPError):
            return
        log.error("uncaught exception in %s", self._request_summary(), exc_info=value)


class BaseHandler(SecureHandler):
    """API handlers: query parameters, and Redis calls off the event loop."""

    ctx: GatewayContext

    def initialize(self, ctx: GatewayContext) -> None:
        self.ctx = ctx

    def write_json(self, data: Any, status: int = 200) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json; charset=UTF-8")
        self.set_header("Cache-Control", "no-store")
        self.finish(json.dumps(data, separators=(",", ":")))

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """Run sync ``fn`` (Redis or CPU work) in the pool; a Redis outage becomes a 503."""
        try:
            value: T = await IOLoop.current().run_in_executor(self.ctx.executor, fn, *args)
        except REDIS_DOWN_ERRORS as exc:
            self.ctx.health.failed(exc)
            raise tornado.web.HTTPError(503, REDIS_DOWN_MESSAGE) from exc
        self.ctx.health.ok()
        return value

    def stream_id(self, raw: str) -> str:
        """Validate a path id (Tornado has already percent-decoded it) or answer 400."""
        try:
            return check_stream_id(raw)
        except InvalidMessage as exc:
            raise tornado.web.HTTPError(400, "%s", str(exc)) from exc

    def query(self, name: str) -> str | None:
        """A query parameter as sent (the last one if repeated).

        Not ``get_query_argument``: it quietly turns control characters into spaces, and
        they must be seen to be refused.
        """
        values = self.request.query_arguments.get(name)
        if not values:
            return None
        try:
            return values[-1].decode("utf-8")
        except UnicodeDecodeError as exc:
            raise tornado.web.HTTPError(400, "invalid %s: not UTF-8", name) from exc

    def param(self, parse: Callable[..., T], *args: Any) -> T:
        """Apply a ``parse_*`` helper; its ParamError becomes a 400 naming the parameter."""
        try:
            return parse(*args)
        except ParamError as exc:
            raise tornado.web.HTTPError(400, "%s", str(exc)) from exc

    def job_id(self, raw: str) -> str:
        """Validate a job id from the path or answer 400."""
        try:
            return check_job_id(raw)
        except InvalidMessage as exc:
            raise tornado.web.HTTPError(400, "%s", str(exc)) from exc

    async def job_or_404(self, job_id: str) -> dict[str, Any]:
        job = await self.run(get_job, self.ctx.client, job_id)
        if job is None:
            raise tornado.web.HTTPError(404, "unknown analysis job %r", job_id)
        return job


class NotFoundHandler(BaseHandler):
    """Every unknown path, API or not: 404 JSON."""

    def prepare(self) -> None:
        raise tornado.web.HTTPError(404, "no such resource: %s", self.request.path)


class SecureStaticHandler(SecureHandler, tornado.web.StaticFileHandler):
    """Static files with the same security headers and JSON errors as the API."""

    async def get(self, path: str, include_body: bool = True) -> None:
        """A missing file, a directory or a path out of the root answers like any unknown
        path."""
        try:
            await super().get(path, include_body)
        except tornado.web.HTTPError as exc:
            if exc.status_code not in (403, 404):
                raise
            raise tornado.web.HTTPError(404, "no such resource: %s", self.request.path) from exc

    def set_extra_headers(self, path: str) -> None:
        if path.endswith(".html") or not path:
            self.set_header("Cache-Control", "no-cache")


class DashboardHandler(SecureStaticHandler):
    """The built SPA: hashed bundles under ``assets/`` cached for a year, the rest (above all
    index.html, which names the current bundles) revalidated on every load."""

    def set_extra_headers(self, path: str) -> None:
        self.set_header("Cache-Control", IMMUTABLE if path.startswith("assets/") else "no-cache")


class StreamsHandler(BaseHandler):
    async def get(self) -> None:
        members = await self.run(self.ctx.registry.members)
        self.write_json({"streams": [stream_json(m) for m in members]})


class StreamHandler(BaseHandler):
    async def get(self, raw_id: str) -> None:
        stream = self.stream_id(raw_id)
        members = await self.run(self.ctx.registry.members)
        for member in members:
            if member.id == stream:
                self.write_json(stream_json(member))
                return
        raise tornado.web.HTTPError(404, "unknown stream %r", stream)


class SnapshotHandler(BaseHandler):
    async def get(self, raw_id: str) -> None:
        stream = self.stream_id(raw_id)
        entries = await self.run(self.ctx.broker.latest, stream, SNAPSHOT_SCAN)
        snap = pick_snapshot(entries)
        if snap is None:
            raise tornado.web.HTTPError(404, "no output yet for stream %r", stream)
        try:
            body = await self.run(render_snapshot, snap)
        except ValueError as exc:
            log.warning("snapshot of %s: cannot annotate frame seq %d: %s", stream, snap.seq, exc)
            raise tornado.web.HTTPError(502, "the latest frame of %r is not a decodable JPEG",
                                        stream) from exc
        self.set_header("Content-Type", "image/jpeg")
        self.set_header("Cache-Control", "no-store")
        self.set_header("X-EI-Seq", str(snap.seq))
        self.finish(body)


class LatestHandler(BaseHandler):
    async def get(self, raw_id: str) -> None:
        stream = self.stream_id(raw_id)
        entries = await self.run(self.ctx.broker.latest, stream, SNAPSHOT_SCAN)
        results = latest_by_type(entries)
        if not results:
            raise tornado.web.HTTPError(404, "no results yet for stream %r", stream)
        self.write_json({"stream": stream, "results": results})


class HistoryHandler(BaseHandler):
    """Shared by /results and /counts: the stream id and the time range."""

    def time_range(self) -> tuple[float, float]:
        return self.param(parse_range, self.query("since"), self.query("until"), time.time())

    async def check_known(self, stream: str, found: bool) -> None:
        """404 only for a stream that is neither live nor has any history at all."""
        if not found and not await self.run(self.ctx.stream_known, stream,
                                            keys.results(stream)):
            raise tornado.web.HTTPError(404, "unknown stream %r", stream)


class ResultsHandler(HistoryHandler):
    async def get(self, raw_id: str) -> None:
        stream = self.stream_id(raw_id)
        since, until = self.time_range()
        limit = self.param(parse_limit, self.query("limit"))
        label = self.param(parse_label, self.query("label"))
        results, truncated = await self.run(query_results, self.ctx.broker, stream, since,
                                            until, limit, label)
        await self.check_known(stream, bool(results))
        self.write_json({"stream": stream, "since": since, "until": until,
                         "results": results, "truncated": truncated})


class CountsHandler(HistoryHandler):
    async def get(self, raw_id: str) -> None:
        stream = self.stream_id(raw_id)
        since, until = self.time_range()
        step = self.param(parse_step, self.query("step"), since, until)
        series, found = await self.run(query_counts, self.ctx.broker, stream, since, until,
                                       step)
        await self.check_known(stream, found)
        self.write_json({"stream": stream, "since": since, "until": until, "step": step,
                         "series": series})


@tornado.web.stream_request_body
class AnalysisJobsHandler(BaseHandler):
    """``POST /api/analysis`` submits a job, ``GET /api/analysis`` lists them.

    The body is streamed in rather than buffered by Tornado, so a request over
    :data:`MAX_JOB_BODY` is refused without being held in memory.
    """

    body: bytearray
    too_large: bool

    def prepare(self) -> None:
        self.body = bytearray()
        self.too_large = False
        length = self.request.headers.get("Content-Length", "")
        if length.isdigit() and int(length) > MAX_JOB_BODY:
            raise tornado.web.HTTPError(413, "the body is larger than %d bytes", MAX_JOB_BODY)

    def data_received(self, chunk: bytes) -> None:
        if self.too_large or len(self.body) + len(chunk) > MAX_JOB_BODY:
            self.too_large = True  # a chunked body: keep reading, stop keeping
            self.body.clear()
        else:
            self.body += chunk

    async def get(self) -> None:
        limit = self.param(parse_int, "limit", self.query("limit"), DEFAULT_JOBS_LIMIT, 1,
                           MAX_JOBS_LIMIT)
        self.write_json({"jobs": await self.run(list_jobs, self.ctx.client, limit)})

    async def post(self) -> None:
        if self.too_large:
            raise tornado.web.HTTPError(413, "the body is larger than %d bytes", MAX_JOB_BODY)
        media_type = self.request.headers.get("Content-Type", "").split(";")[0].strip().lower()
        if media_type != "application/json":
            # Also keeps other sites' pages out: a cross-origin JSON POST needs a CORS
            # preflight, which the gateway never grants.
            raise tornado.web.HTTPError(415, "send the job as JSON with Content-Type: "
                                             "application/json")
        try:
            request = parse_job_request(bytes(self.body))
            check_known_types(request.types, await self.run(known_types, self.ctx.client))
            # On the pool: the media directory may be a network volume.
            await self.run(resolve_source, request.source, self.ctx.media_dir)
        except InvalidMessage as exc:
            raise tornado.web.HTTPError(400, "%s", str(exc)) from exc
        job = await self.run(create_job, self.ctx.client, request)
        if job is None:  # only a DELETE racing the creation gets here
            raise tornado.web.HTTPError(404, "the new job was deleted at once")
        log.info("analysis job %s: %s, types %s, every %d frame(s)", job["id"], job["source"],
                 ",".join(job["types"]), job["frame_step"])
        self.set_header("Location", f"/api/analysis/{job['id']}")
        self.write_json(job, 201)


class AnalysisJobHandler(BaseHandler):
    async def get(self, raw_id: str) -> None:
        self.write_json(await self.job_or_404(self.job_id(raw_id)))

    async def delete(self, raw_id: str) -> None:
        job_id = self.job_id(raw_id)
        if not await self.run(delete_job, self.ctx.client, job_id):
            raise tornado.web.HTTPError(404, "unknown analysis job %r", job_id)
        log.info("analysis job %s deleted", job_id)
        self.set_status(204)
        self.finish()


class AnalysisResultsHandler(BaseHandler):
    async def get(self, raw_id: str) -> None:
        job_id = self.job_id(raw_id)
        offset = self.param(parse_int, "offset", self.query("offset"), 0, 0, MAX_OFFSET)
        limit = self.param(parse_int, "limit", self.query("limit"), DEFAULT_PAGE, 1, MAX_PAGE)
        page = await self.run(job_results_page, self.ctx.client, job_id, offset, limit)
        if page is None:
            raise tornado.web.HTTPError(404, "unknown analysis job %r", job_id)
        self.write_json(page)


class AnalysisFrameHandler(BaseHandler):
    """Shared by the frame image and the frame results."""

    async def frame(self, raw_id: str, raw_frame: str, jpeg: bool) -> tuple[str, int, JobFrame]:
        job_id = self.job_id(raw_id)
        frame = self.param(parse_frame_number, raw_frame)
        found = await self.run(read_job_frame, self.ctx.client, job_id, frame, jpeg)
        if found.job is None:
            raise tornado.web.HTTPError(404, "unknown analysis job %r", job_id)
        if not found.stored:
            step = found.job["frame_step"]
            raise tornado.web.HTTPError(
                404, "frame %d of job %r is not stored: the job keeps frames 0, %d, %d, ... "
                "of its video, as they are read", frame, job_id, step, 2 * step)
        return job_id, frame, found


class AnalysisFrameImageHandler(AnalysisFrameHandler):
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
    async def get(self, raw_id: str, raw_frame: str) -> None:
        job_id, frame, found = await self.frame(raw_id, raw_frame, jpeg=False)
        _, results = frame_view(frame, b"", found.results)
        self.write_json({"id": job_id, "frame": frame, "results": results})


class MjpegHandler(BaseHandler):
    """The newest annotated frame of a stream, pushed as ``multipart/x-mixed-replace``.

    Viewable in an ``<img>``, a browser tab, ffplay or VLC. Each part is rendered only once
    the previous one has been flushed to the client, from the newest frame at that moment:
    a slow client gets fewer frames, never a backlog.
    """

    gone = False

    def on_connection_close(self) -> None:
        self.gone = True
        super().on_connection_close()

    async def get(self, raw_id: str) -> None:
        stream = self.stream_id(raw_id)
        fps = self.param(parse_fps, self.query("fps"))
        ctx = self.ctx
        if ctx.mjpeg_clients >= ctx.max_mjpeg_clients:
            raise tornado.web.HTTPError(503, "too many MJPEG viewers (%d); retry later",
                                        ctx.max_mjpeg_clients)
        ctx.mjpeg_clients += 1  # counted before any await, so the bound holds
        try:
            if not await self.run(ctx.stream_known, stream, keys.out(stream)):
                raise tornado.web.HTTPError(404, "unknown stream %r", stream)
            self.set_header("Content-Type",
                            f"multipart/x-mixed-replace; boundary={MJPEG_BOUNDARY}")
            self.set_header("Cache-Control", "no-store")
            self.set_header("X-Accel-Buffering", "no")  # proxies must not hold parts back
            await self.flush()
            await self.stream_frames(MjpegFollower(ctx.broker, stream), 1.0 / fps)
            if not self.gone:
                self.finish(f"--{MJPEG_BOUNDARY}--\r\n".encode("ascii"))
        except StreamClosedError:
            self.gone = True
        finally:
            ctx.mjpeg_clients -= 1

    async def stream_frames(self, follower: MjpegFollower, interval: float) -> None:
        """Send new frames, at most one per ``interval``, until the client leaves or the
        gateway stops; a Redis outage pauses the stream instead of ending it."""
        ctx = self.ctx
        loop = IOLoop.current()
        next_at = 0.0
        while not self.gone and not ctx.stopping.is_set():
            wait = next_at - time.monotonic()
            if wait > 0 and await ctx.wait_stopping(wait):
                return
            try:
                frame = await loop.run_in_executor(ctx.follow_pool, follower.next_frame,
                                                   MJPEG_BLOCK_MS)
            except REDIS_DOWN_ERRORS as exc:
                ctx.health.failed(exc)
                await ctx.wait_stopping(1.0)
                continue
            ctx.health.ok()
            if frame is None or self.gone:
                continue
            self.write(mjpeg_part(frame[1]))
            await self.flush()
            if ctx.metrics is not None:
                ctx.metrics.mjpeg_frames.inc()
            next_at = time.monotonic() + interval


class WebsocketProxyHandler(SecureHandler, tornado.websocket.WebSocketHandler):
    """``/ws`` on the gateway's origin: relays the websocket service, both ways, unchanged.

    Each direction awaits its write before reading the next message, so nothing queues here:
    a slow browser holds back the upstream connection, and the websocket service's per-client
    mailbox (newest frame per stream and type) decides what is skipped.
    """

    ctx: GatewayContext
    upstream: tornado.websocket.WebSocketClientConnection | None
    relay: asyncio.Task[None] | None

    def initialize(self, ctx: GatewayContext) -> None:
        self.ctx = ctx
        self.upstream = None
        self.relay = None

    @property
    def max_message_size(self) -> int:
        return WS_MAX_INCOMING

    async def get(self, *args: Any, **kwargs: Any) -> None:
        if self.request.headers.get("Upgrade", "").lower() != "websocket":
            raise tornado.web.HTTPError(400, "%s is a websocket endpoint (Upgrade: websocket)",
                                        WS_PATH)
        await super().get(*args, **kwargs)

    async def open(self, *args: str, **kwargs: str) -> None:
        """Connect upstream (the browser's messages wait until this returns)."""
        ctx = self.ctx
        if len(ctx.proxies) >= ctx.max_proxy_clients:
            log.warning("ws proxy: refusing %s: %d clients already", self.request.remote_ip,
                        len(ctx.proxies))
            self.close(1013, "too many clients")
            return
        ctx.proxies.add(self)
        try:
            upstream = await tornado.websocket.websocket_connect(
                ctx.websocket_upstream, connect_timeout=WS_CONNECT_TIMEOUT_S,
                max_message_size=WS_MAX_UPSTREAM)
        except (OSError, HTTPClientError, StreamClosedError,
                tornado.websocket.WebSocketError, asyncio.TimeoutError) as exc:
            log.warning("ws proxy: websocket service %s unreachable: %s",
                        ctx.websocket_upstream, exc)
            self.close(1013, "websocket service unavailable")
            return
        if self not in ctx.proxies:  # the browser left (or shutdown began) meanwhile
            upstream.close(1000)
            return
        self.upstream = upstream
        # Small buffers on both hops, so a slow browser holds back the websocket service (whose
        # mailbox then skips to the newest frame) instead of megabytes of stale frames.
        up = upstream.protocol.stream if upstream.protocol is not None else None
        down = self.ws_connection.stream if self.ws_connection is not None else None
        if up is not None:
            cap_socket_buffers(up.socket, recv=LIVE_SOCKET_BUFFER)
        if down is not None:
            cap_socket_buffers(down.socket, send=LIVE_SOCKET_BUFFER)
        self.relay = asyncio.create_task(self._relay_down(upstream))

    async def _relay_down(self, upstream: tornado.websocket.WebSocketClientConnection) -> None:
        """Websocket service -> browser until either side closes."""
        while (message := await upstream.read_message()) is not None:
            try:
                await self.write_message(message, binary=isinstance(message, bytes))
            except tornado.websocket.WebSocketClosedError:
                return
        code = upstream.close_code
        self.close(code if code in _RELAYABLE_CLOSE else 1013,
                   upstream.close_reason or "websocket service closed the connection")

    async def on_message(self, message: str | bytes) -> None:
        """Browser -> websocket service (subscriptions), one at a time."""
        if self.upstream is None:
            return
        try:
            await self.upstream.write_message(message, binary=isinstance(message, bytes))
        except tornado.websocket.WebSocketClosedError:
            self.close(1013, "websocket service closed the connection")

    def on_close(self) -> None:
        self.ctx.proxies.discard(self)
        if self.upstream is not None:
            self.upstream.close(1000)
        if self.relay is not None:
            self.relay.cancel()


class StatusHandler(BaseHandler):
    async def get(self) -> None:
        self.write_json(await self.run(collect_status, self.ctx.client))


class ConfigHandler(BaseHandler):
    """What a browser page needs to know about its deployment (the websocket URL)."""

    def get(self) -> None:
        self.write_json({"websocket_url": self.ctx.websocket_url or None})


class HealthHandler(BaseHandler):
    def get(self) -> None:
        self.write_json({"status": "ok"})


class ReadyHandler(BaseHandler):
    async def get(self) -> None:
        await self.run(self.ctx.client.ping)
        self.write_json({"status": "ready"})


class GatewayApp(tornado.web.Application):
    """Counts every request by handler and status; access log at debug for successes."""

    def log_request(self, handler: tornado.web.RequestHandler) -> None:
        status = handler.get_status()
        name = type(handler).__name__
        metrics: GatewayMetrics | None = self.settings.get("ei_metrics")
        if metrics is not None:
            metrics.requests.labels(name, str(status)).inc()
        level = logging.DEBUG if status < 400 else logging.INFO if status < 500 else \
            logging.WARNING
        if log.isEnabledFor(level):
            log.log(level, "%d %s %.1fms", status, handler._request_summary(),
                    1000.0 * handler.request.request_time())


def dashboard_dir(spa_dir: Path | None) -> Path | None:
    """``spa_dir`` when it holds a built dashboard (index.html), else None (logged once)."""
    if spa_dir is None:
        return None
    if (spa_dir / "index.html").is_file():
        log.info("gateway: serving the dashboard from %s", spa_dir)
        return spa_dir
    log.warning("gateway: the dashboard is not built (no %s); / serves the plain page. "
                "`make spa` or `make demo` builds it", spa_dir / "index.html")
    return None


def make_app(client: redis.Redis, *, metrics: GatewayMetrics | None = None,
             executor: ThreadPoolExecutor | None = None, websocket_url: str = "",
             websocket_upstream: str = "", spa_dir: Path | None = None,
             max_mjpeg_clients: int = 20, max_proxy_clients: int = 200,
             static_path: Path = STATIC_DIR, media_dir: Path = Path("media")) -> GatewayApp:
    """Build the Tornado application; tests pass their own client, pool and metrics.

    ``spa_dir`` is the built dashboard (``None``: the plain page only); an empty
    ``websocket_upstream`` leaves ``/ws`` unrouted (404); ``media_dir`` is where analysis-job
    sources are checked.
    """
    if executor is None:
        executor = ThreadPoolExecutor(max_workers=4, thread_name_prefix="gateway-redis")
    csp = content_security_policy(websocket_url)
    ctx = GatewayContext(client=client, executor=executor, metrics=metrics,
                         websocket_url=websocket_url, csp=csp, health=RedisHealth(metrics),
                         websocket_upstream=websocket_upstream,
                         max_mjpeg_clients=max_mjpeg_clients,
                         max_proxy_clients=max_proxy_clients, media_dir=media_dir)
    args = {"ctx": ctx}
    sid = r"([^/]+)"
    dashboard = dashboard_dir(spa_dir)
    # A StaticFileHandler needs a path group; "/" maps to "" and so to index.html.
    index: Any = ((r"/()", DashboardHandler, {"path": str(dashboard),
                                              "default_filename": "index.html"})
                  if dashboard is not None else
                  (r"/()", SecureStaticHandler, {"path": str(static_path),
                                                 "default_filename": "index.html"}))
    routes: list[Any] = [
        index,
        (r"/static/(.*)", SecureStaticHandler, {"path": str(static_path)}),
        (r"/healthz", HealthHandler, args),
        (r"/readyz", ReadyHandler, args),
        (r"/api/streams", StreamsHandler, args),
        (rf"/api/streams/{sid}", StreamHandler, args),
        (rf"/api/streams/{sid}/snapshot\.jpg", SnapshotHandler, args),
        (rf"/api/streams/{sid}/latest", LatestHandler, args),
        (rf"/api/streams/{sid}/results", ResultsHandler, args),
        (rf"/api/streams/{sid}/counts", CountsHandler, args),
        (rf"/api/streams/{sid}/mjpeg", MjpegHandler, args),
        (r"/api/analysis", AnalysisJobsHandler, args),
        (rf"/api/analysis/{sid}", AnalysisJobHandler, args),
        (rf"/api/analysis/{sid}/results", AnalysisResultsHandler, args),
        (rf"/api/analysis/{sid}/frames/{sid}\.jpg", AnalysisFrameImageHandler, args),
        (rf"/api/analysis/{sid}/frames/{sid}/results", AnalysisFrameResultsHandler, args),
        (r"/api/status", StatusHandler, args),
        (r"/api/config", ConfigHandler, args),
    ]
    if websocket_upstream:
        routes.append((WS_PATH, WebsocketProxyHandler, args))
    if dashboard is not None:
        # Any other file of the build (favicon, images), except under /api/.
        routes.append((r"/(?!api(?:/|$))(.+)", DashboardHandler, {"path": str(dashboard)}))
    return GatewayApp(
        routes,
        default_handler_class=NotFoundHandler,
        default_handler_args=args,
        websocket_ping_interval=WS_PING_S,
        websocket_ping_timeout=WS_PING_S,
        ei_csp=csp,
        ei_metrics=metrics,
        ei_context=ctx,
        compress_response=False,
    )


async def serve(app: GatewayApp, host: str, port: int, stop: Callable[[], bool],
                started: Callable[[int], None] | None = None) -> None:
    """Serve ``app`` until ``stop()`` is true, then end streams and close connections
    (bounded waits)."""
    sockets = bind_sockets(port, host)
    server = HTTPServer(app)
    server.add_sockets(sockets)
    bound = int(sockets[0].getsockname()[1])
    log.info("gateway on http://%s:%d/", host, bound)
    if started is not None:
        started(bound)
    try:
        while not stop():
            # The stop event is a threading.Event set by a signal handler; polling is the
            # simplest bridge into the loop.
            await asyncio.sleep(0.1)
    finally:
        server.stop()
        ctx: GatewayContext = app.settings["ei_context"]
        await ctx.shutdown()
        try:
            await asyncio.wait_for(server.close_all_connections(), 5.0)
        except asyncio.TimeoutError:
            log.warning("gateway: some connections did not close within 5 s")


def main(argv: list[str]) -> int:
    """``ei gateway``: parse settings, serve until SIGTERM/SIGINT, exit 0."""
    settings = parse_settings(GatewaySettings, argv, prog="ei gateway")
    setup_logging(settings.log_level)
    runtime = ServiceRuntime("gateway")
    runtime.install_signal_handlers()
    metrics = GatewayMetrics(runtime.registry)
    runtime.serve_health(settings.metrics_host, settings.metrics_port)
    client = connect(settings.redis_url)
    log.info("gateway: Redis at %s", redact_url(settings.redis_url))
    if settings.websocket_upstream:
        log.info("gateway: proxying %s to %s", WS_PATH, settings.websocket_upstream)
    if settings.media_dir.is_dir():
        log.info("gateway: analysis-job sources from %s", settings.media_dir)
    else:
        log.warning("gateway: the media directory %s does not exist: analysis jobs can read "
                    "URLs only (EI_MEDIA_DIR)", settings.media_dir)
    executor = ThreadPoolExecutor(max_workers=4, thread_name_prefix="gateway-redis")
    app = make_app(client, metrics=metrics, executor=executor,
                   websocket_url=settings.websocket_url,
                   websocket_upstream=settings.websocket_upstream, spa_dir=settings.spa_dir,
                   max_mjpeg_clients=settings.max_mjpeg_clients,
                   max_proxy_clients=settings.max_proxy_clients, media_dir=settings.media_dir)

    try:
        asyncio.run(serve(app, settings.host, settings.port, runtime.stop.is_set,
                          started=lambda _port: runtime.ready.set()))
    finally:
        executor.shutdown(wait=False, cancel_futures=True)
        runtime.close()
        client.close()
    log.info("gateway: stopped")
    return 0
