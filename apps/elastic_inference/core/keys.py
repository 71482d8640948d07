"""Every Redis key of the wire contract, and the id rules that make keys safe to build.

Keeping them in one module means a key is spelled once; doc/wire-contract.md mirrors this file.

Redis Cluster: keys that one script or transaction uses together share a hash slot through a
hash tag, the part of the name in braces (doc/scaling.md, "Redis Cluster", lists each
operation). Where a key is read from outside (the live queues by KEDA, ``ei:events`` by
consumers), it keeps its name and the keys joining it carry that whole name as their tag
(:func:`tagged`): a key without braces hashes its whole name.
"""

from __future__ import annotations

import hashlib
import re

from .errors import InvalidMessage

PREFIX = "ei"
STREAM_ID_RE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
TYPE_RE = re.compile(r"^[a-z0-9_-]{1,32}$")


def _checked(value: str, pattern: re.Pattern[str], what: str) -> str:
    """Return ``value`` if all of it matches ``pattern`` (fullmatch: ``$`` alone would let a
    trailing newline through), else raise InvalidMessage naming ``what``."""
    if not isinstance(value, str) or not pattern.fullmatch(value):
        raise InvalidMessage(f"invalid {what} {value!r}: must match {pattern.pattern}")
    return value


def check_stream_id(stream: str) -> str:
    """Return ``stream`` if it is a valid stream id, else raise InvalidMessage."""
    return _checked(stream, STREAM_ID_RE, "stream id")


def check_type(infer_type: str) -> str:
    """Return ``infer_type`` if it is a valid inference type name, else raise InvalidMessage."""
    return _checked(infer_type, TYPE_RE, "inference type")


def tag(name: str) -> str:
    """``name`` as a hash tag: every key carrying it lives in the hash slot of the key
    ``name`` itself (Redis hashes a key without braces by its whole name)."""
    return "{" + name + "}"


def queue(infer_type: str) -> str:
    """Frame queue (LIST) for one inference type."""
    return f"{PREFIX}:queue:{check_type(infer_type)}"


def queue_stats(infer_type: str) -> str:
    """Push/drop counters (HASH) for one frame queue; in the queue's hash slot (the push
    script writes both)."""
    return f"{PREFIX}:queue:{tag(queue(infer_type))}:stats"


JOB_ID_RE = re.compile(r"^j[0-9a-f]{12}$")


def check_job_id(job: str) -> str:
    """Return ``job`` if it is a valid analysis job id (``j`` + 12 hex digits)."""
    return _checked(job, JOB_ID_RE, "job id")


def job_queue(infer_type: str) -> str:
    """Lossless frame queue (LIST of message ids) of analysis jobs for one type; its keys
    share the slot of the tag ``{TYPE}`` (core/leased.py's scripts use all three)."""
    return f"{PREFIX}:jobq:{tag(check_type(infer_type))}"


def job_queue_messages(infer_type: str) -> str:
    """HASH message id -> frame message of the lossless queue (the LIST holds ids only)."""
    return f"{job_queue(infer_type)}:msg"


def job_queue_leases(infer_type: str) -> str:
    """ZSET message id -> lease deadline (epoch s): taken, not yet acknowledged."""
    return f"{job_queue(infer_type)}:leased"


def jobs() -> str:
    """ZSET of analysis job ids scored by creation time."""
    return f"{PREFIX}:jobs"


def jobs_pending() -> str:
    """Lossless queue of job ids waiting for an analysis runner (same layout as job_queue,
    one hash slot: ``{pending}``)."""
    return f"{PREFIX}:jobs:{tag('pending')}"


def jobs_pending_messages() -> str:
    """HASH job id -> job id of the pending-jobs queue (the LIST holds ids only)."""
    return f"{jobs_pending()}:msg"


def jobs_pending_leases() -> str:
    """ZSET job id -> lease deadline: jobs a runner is extracting."""
    return f"{jobs_pending()}:leased"


def job(job_id: str) -> str:
    """HASH with one job's request and progress. The job id is the hash tag of all the job's
    keys (record, frames, results, tracks): its scripts check the record as they write."""
    return f"{PREFIX}:job:{tag(check_job_id(job_id))}"


def job_frames(job_id: str) -> str:
    """HASH frame number -> JPEG of the frames a job analyses."""
    return f"{job(job_id)}:frames"


def job_keys_pattern() -> str:
    """SCAN pattern matching every job's record, frames and results (for sweeping orphans)."""
    return f"{PREFIX}:job:*"


def _segment(key: str, head: str, rule: re.Pattern[str]) -> str | None:
    """The name segment right after ``head`` in ``key`` if it follows ``rule``, else None."""
    if not key.startswith(head):
        return None
    part = key[len(head):].split(":", 1)[0]
    if part.startswith("{") and part.endswith("}"):  # a hash tag
        part = part[1:-1]
    return part if rule.fullmatch(part) else None


def job_of_key(key: str) -> str | None:
    """The job id a key of :func:`job_keys_pattern` belongs to, None if it is not a job key."""
    return _segment(key, f"{PREFIX}:job:", JOB_ID_RE)


def job_queue_pattern() -> str:
    """SCAN pattern matching every type's job-queue keys."""
    return f"{PREFIX}:jobq:*"


def job_queue_type(key: str) -> str | None:
    """The inference type a key of :func:`job_queue_pattern` belongs to, None if not one."""
    return _segment(key, f"{PREFIX}:jobq:", TYPE_RE)


def job_results(job_id: str, infer_type: str) -> str:
    """HASH frame number -> result JSON of one type of one job (a redelivery overwrites)."""
    return f"{job(job_id)}:results:{check_type(infer_type)}"


def job_tracks(job_id: str) -> str:
    """HASH frame number -> JSON ``{type: [track, ...]}`` of a done job (core/jobanalytics.py)."""
    return f"{job(job_id)}:tracks"


def frames(stream: str) -> str:
    """Frame store (STREAM) of one source stream: each captured JPEG once, whatever the number
    of types; queues and live results refer to an entry by its id (core/framestore.py).
    Capped by length, so a frame lives a few seconds."""
    return f"{PREFIX}:frames:{check_stream_id(stream)}"


def out(stream: str) -> str:
    """Live output buffer (STREAM) of one source stream: each type's result JSON and the id of
    its frame in :func:`frames` (entries written before the frame store carry the JPEG)."""
    return f"{PREFIX}:out:{check_stream_id(stream)}"


def results(stream: str) -> str:
    """Result history (STREAM) of one source stream, trimmed by age."""
    return f"{PREFIX}:results:{check_stream_id(stream)}"


def results_pattern() -> str:
    """SCAN pattern matching every stream's result history."""
    return f"{PREFIX}:results:*"


def stream_registry() -> str:
    """Sorted set of live stream ids scored by last heartbeat (epoch seconds)."""
    return f"{PREFIX}:streams"


def sources() -> str:
    """HASH of the sources the system manages: stream id -> the source's JSON
    (:class:`.sources.SourceConfig`), written by the gateway, read by the stream pool."""
    return f"{PREFIX}:sources"


def source_lease(stream: str) -> str:
    """STRING naming the stream-pool replica that reads the source, expiring unless renewed."""
    return f"{PREFIX}:source:lease:{check_stream_id(stream)}"


def stream_pool() -> str:
    """Sorted set of stream-pool replica ids scored by last heartbeat (epoch seconds)."""
    return f"{PREFIX}:stream-pool"


def rules(stream: str) -> str:
    """HASH of one stream's zones and lines: ``rules`` (the JSON document of
    core/analytics/rules.py), ``version`` (incremented by every write) and ``updated`` (epoch
    ms), so a reader notices a change without comparing documents."""
    return f"{PREFIX}:rules:{check_stream_id(stream)}"


def tracks(stream: str) -> str:
    """Live tracks (STREAM) of one source stream, one entry per tracked frame and type, written
    by the ``ei track`` replica that holds the stream's lease (doc/analytics.md, "Wire")."""
    return f"{PREFIX}:tracks:{check_stream_id(stream)}"


def track_lease(stream: str) -> str:
    """STRING naming the ``ei track`` replica that tracks the stream, expiring unless renewed."""
    return f"{PREFIX}:track:lease:{check_stream_id(stream)}"


def track_replicas() -> str:
    """Sorted set of ``ei track`` replica ids scored by last heartbeat (epoch seconds)."""
    return f"{PREFIX}:track:replicas"


def track_ids(stream: str) -> str:
    """Counter (INCR) that allocates a stream's track ids, so no id is reused, also across a
    takeover by another replica."""
    return f"{PREFIX}:track:ids:{check_stream_id(stream)}"


def counts(stream: str) -> str:
    """HASH ``RULE|WHAT|LABEL`` -> cumulative count of one stream's rules (enter, leave, dwell,
    a->b, b->a), so totals survive a takeover."""
    return f"{PREFIX}:counts:{check_stream_id(stream)}"


def counts_history(stream: str) -> str:
    """STREAM of one stream's count totals sampled every few seconds, trimmed by age."""
    return f"{PREFIX}:counts-history:{check_stream_id(stream)}"


def events() -> str:
    """STREAM of every stream's zone and line events (the entry id is the event id), trimmed
    by age and length."""
    return f"{PREFIX}:events"


EVENT_ID_RE = re.compile(r"^[0-9]{1,20}-[0-9]{1,20}$")


def check_entry_id(entry_id: str, what: str = "entry id") -> str:
    """Return ``entry_id`` if it is a Redis stream entry id (``MS-SEQ``, each part below
    2**64, as Redis requires), else InvalidMessage naming ``what``."""
    _checked(entry_id, EVENT_ID_RE, what)
    if any(int(part) >= 2**64 for part in entry_id.split("-")):
        raise InvalidMessage(f"invalid {what} {entry_id!r}: each part is below 2**64")
    return entry_id


def check_event_id(event_id: str) -> str:
    """Return ``event_id`` if it is an event's id (a stream entry id), else InvalidMessage."""
    return check_entry_id(event_id, "event id")


def event_snapshot(event_id: str) -> str:
    """STRING with the JPEG snapshot of one event, expiring with the event's retention; in
    the slot of :func:`events` (the recording script trims both)."""
    return f"{PREFIX}:event-snapshot:{tag(events())}:{check_event_id(event_id)}"


def event_snapshots() -> str:
    """LIST of the snapshot keys (:func:`event_snapshot`) in the order they were written, so
    the oldest beyond EI_EVENT_SNAPSHOTS are deleted as new ones come (core/eventstore.py);
    in the slot of :func:`events`."""
    return f"{PREFIX}:event-snapshots:{tag(events())}"


def stream_info(stream: str) -> str:
    """HASH with one stream's details (types, source kind, size, fps)."""
    return f"{PREFIX}:stream:{check_stream_id(stream)}"


def worker_registry(infer_type: str) -> str:
    """Sorted set of worker ids of one type scored by last heartbeat."""
    return f"{PREFIX}:workers:{check_type(infer_type)}"


def worker_info(worker_id: str) -> str:
    """HASH with one worker's details and its latest rates."""
    return f"{PREFIX}:worker:{check_stream_id(worker_id)}"


def worker_types() -> str:
    """SET of inference types that have ever had a worker (for status listings)."""
    return f"{PREFIX}:worker-types"


#: Names of users and API tokens: lower case, so ``Admin`` and ``admin`` cannot be two
#: principals, and nothing a key, a log line or a table could be confused by.
AUTH_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")
TOKEN_DIGEST_RE = re.compile(r"^[0-9a-f]{64}$")


def check_auth_name(name: str) -> str:
    """Return ``name`` if it is a valid user or token name, else raise InvalidMessage."""
    return _checked(name, AUTH_NAME_RE, "name")


def _digest(digest: str, what: str) -> str:
    if not isinstance(digest, str) or not TOKEN_DIGEST_RE.fullmatch(digest):
        raise InvalidMessage(f"invalid {what} digest: must be 64 lower-case hex digits")
    return digest


#: Users, tokens and sessions share one hash slot: their scripts and transactions join a
#: token or a session to the user and the listings.
AUTH_TAG = tag("auth")


def auth_pattern() -> str:
    """Pattern matching every key of users, API tokens and login sessions (``ei:{auth}:*``)."""
    return f"{PREFIX}:{AUTH_TAG}:*"


#: Where users, tokens and sessions were kept before they shared a hash slot (``ei:auth:*``);
#: :func:`.authstore.migrate_legacy_keys` moves them on a single server.
LEGACY_AUTH_PREFIX = f"{PREFIX}:auth:"


def auth_key_of_legacy(key: str) -> str:
    """The name today of a key stored under :data:`LEGACY_AUTH_PREFIX`."""
    return f"{PREFIX}:{AUTH_TAG}:{key[len(LEGACY_AUTH_PREFIX):]}"


def auth_users() -> str:
    """SET of user names (for listing)."""
    return f"{PREFIX}:{AUTH_TAG}:users"


def auth_user(name: str) -> str:
    """HASH of one user: ``role``, ``created`` and the argon2 ``hash`` of the password."""
    return f"{PREFIX}:{AUTH_TAG}:user:{check_auth_name(name)}"


def auth_tokens() -> str:
    """HASH token name -> SHA-256 hex digest of the token (for listing and revoking by name)."""
    return f"{PREFIX}:{AUTH_TAG}:tokens"


def auth_token(digest: str) -> str:
    """HASH of one API token found by the digest of the token: ``name``, ``role``, ``created``,
    ``last_used``. The token itself is stored nowhere."""
    return f"{PREFIX}:{AUTH_TAG}:token:{_digest(digest, 'token')}"


def auth_session(digest: str) -> str:
    """HASH of one login session found by the SHA-256 digest of its id: ``user``, ``csrf``,
    ``created``, ``expires``; it expires with the session. The id itself is stored nowhere."""
    return f"{PREFIX}:{AUTH_TAG}:session:{_digest(digest, 'session')}"


def auth_user_sessions(name: str) -> str:
    """SET of the session digests of one user, so removing the user ends its sessions."""
    return f"{PREFIX}:{AUTH_TAG}:user-sessions:{check_auth_name(name)}"


#: What a rate-limit key may hold as is: client addresses (IPv4, IPv6) and principal names.
RATE_WHO_RE = re.compile(r"^[A-Za-z0-9_.:-]{1,128}$")


def rate_limit(bucket: str, who: str) -> str:
    """STRING with the GCRA theoretical arrival time (ms) of one client in one rate limit
    (``bucket``: jobs, lists, later logins), expiring once the client is idle long enough.

    ``who`` is kept readable when it is an address or a name; anything else (it comes from
    a request) is replaced by its SHA-256, so no key can be built from arbitrary text.
    """
    check_type(bucket)
    if not isinstance(who, str) or not RATE_WHO_RE.fullmatch(who):
        who = "sha256-" + hashlib.sha256(str(who).encode("utf-8", "replace")).hexdigest()
    return f"{PREFIX}:rate:{bucket}:{who}"
