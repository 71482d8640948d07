"""One Redis ACL user per component, each allowed only the commands and keys its work needs.

The commands are listed per operation of the core classes (:data:`OPERATIONS`: what redis-py
sends for it, and every command its Lua scripts call, since Redis checks those against the
caller's ACL too); a component's user is the union of the operations its code performs. Key
patterns are built from the functions of :mod:`.keys` (:func:`pattern`), never spelled here.

The rules are plain commands and key patterns, which Redis 6.2 and 7.x both load (7's
selectors and read/write key permissions would be finer, but 6.2 refuses them): a component's
commands apply to all of its key patterns. doc/security.md ("Redis users") has the table.

Standard library only: ``tools/gen-k8s-yaml.sh`` runs ``python3 -m elastic_inference.core.acl``
(``NAME PASSWORD`` lines on stdin, the aclfile on stdout) without the project's dependencies.
"""

from __future__ import annotations

import hashlib
import re
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from . import keys

if TYPE_CHECKING:
    import redis

#: Every connection: PING (redis-py's health check of an idle connection, readiness checks) and
#: SELECT (sent when the URL names a database other than 0).
CONNECTION = ("ping", "select")
#: redis-py's cluster client (a ``redis+cluster://`` URL) learns the slots (CLUSTER SLOTS) and
#: the commands' key positions (COMMAND) when it starts; a single server is never asked.
CLUSTER_CLIENT = ("cluster|slots", "command")
#: redis-py runs a registered script with EVALSHA, loads it on NOSCRIPT (SCRIPT LOAD) and, in
#: a pipeline, checks first that it is loaded (SCRIPT EXISTS); a cluster pipeline sends the
#: script whole (EVAL, core/redisconn.py's run_script).
SCRIPTS = ("eval", "evalsha", "script|load", "script|exists")
#: A pipeline with ``transaction=True``.
TRANSACTION = ("multi", "exec")

#: Operation -> the commands it sends, Lua included. Named after the code that sends them.
OPERATIONS: dict[str, tuple[str, ...]] = {
    "FrameQueue.push": (*SCRIPTS, "rpush", "ltrim", "hincrby"),
    "FrameQueue.pop": ("blpop", "lpop", "hincrby"),  # pop_batch, pop_nowait, count_drops
    "FrameQueue.stats": ("llen", "hgetall"),
    "Heartbeats.beat": ("zadd", "hset", "pexpire"),
    "WorkerRegistry.beat": ("sadd", "zadd", "hset", "pexpire"),
    "Heartbeats.remove": ("zrem", "del"),
    "Heartbeats.ids": ("zremrangebyscore", "zrange"),
    "Heartbeats.members": ("zremrangebyscore", "zrange", "hgetall"),
    "worker_types": ("smembers",),
    "FrameStore.add": ("xadd",),
    "FrameStore.fetch": ("xrange",),
    "OutputBroker.publish": ("xadd",),
    "OutputBroker.attach_frames": ("xrange",),
    "OutputBroker.latest": ("xrevrange",),
    "OutputBroker.read": ("xread",),
    "OutputBroker.read_live": ("xread",),
    "OutputBroker.latest_tracks_id": ("xrevrange",),
    "OutputBroker.history": ("xrange", "xrevrange"),
    "OutputBroker.prune_history": ("scan", "xrange", "xtrim"),
    "LeasedQueue.push": (*SCRIPTS, "hset", "rpush"),
    "LeasedQueue.lease": (*SCRIPTS, "time", "zrangebyscore", "zrem", "lpush", "lpop", "hget",
                          "zadd"),
    "LeasedQueue.extend": (*SCRIPTS, "time", "zadd"),
    "LeasedQueue.release": (*SCRIPTS, "zrem", "lpush"),
    "LeasedQueue.ack": ("zrem", "hdel"),
    "LeasedQueue.discard": (*SCRIPTS, "lrange", "hdel", "hexists", "del", "rpush", "zrange",
                            "zrem"),
    "LeasedQueue.owners": ("lrange", "zrange", "hkeys"),
    "LeasedQueue.waiting": ("llen",),
    "JobStore.create": ("hset", "zadd"),
    "JobStore.update": (*SCRIPTS, "exists", "hset"),
    "JobStore.read": ("hget", "hgetall", "hlen", "hexists", "hmget", "hkeys", "zrevrange"),
    "JobStore.delete": ("hget", "unlink", "zrem"),
    "JobStore.store_frame": (*SCRIPTS, "exists", "hstrlen", "hset", "hincrby", "rpush"),
    "JobStore.store_result": (*SCRIPTS, "exists", "hset"),
    "JobStore.store_analytics": (*SCRIPTS, "exists", "del", "hset", "hvals"),
    "JobStore.older_than": ("zrangebyscore",),
    "JobStore.check_room": ("info", "zrange", "hget"),
    "sweep_orphans": ("scan", "exists", "zrange", "unlink", "zrem"),
    "RateLimiter": (*SCRIPTS, "time", "get", "set", "del"),  # allow, refund, reset
    "stream_known": ("exists",),
    "RuleStore.get": ("hmget",),
    "RuleStore.put": (*TRANSACTION, "hset", "hincrby"),
    "RuleStore.delete": ("del",),
    "SourceStore.read": ("hgetall", "hget", "hlen"),  # all, get, count
    "SourceStore.write": ("hsetnx", "hset", "hdel"),  # create, put, delete
    "Leases": (*SCRIPTS, "set", "get", "pexpire", "del", "zadd", "zremrangebyscore",
               "zcard", "zrem"),
    "SourceStore.all": ("hgetall",),  # the stream pool reads the whole registry only
    "TrackStore.read": ("incrby", "hgetall", "hmget", "xrevrange"),
    "TrackStore.write": ("xadd", "hincrby", "del"),  # tracks, counts and their history
    # The event recorder ei track runs (core/eventstore.py): events, and snapshots with their
    # index, the oldest beyond the cap deleted by a script.
    "EventRecorder": (*SCRIPTS, "xadd", "xtrim", "set", "pexpire", "rpush", "expire", "llen",
                      "lrange", "del", "ltrim"),
    "EventStore.query": ("xrevrange",),
    "EventStore.snapshot": ("get",),
    "read_counts": ("xrange", "hgetall"),
    # AuthStore: users and tokens, their scripts included; removing a user ends its sessions.
    "AuthStore": (*SCRIPTS, *TRANSACTION, "exists", "hset", "hget", "hmget", "hgetall",
                  "hexists", "hdel", "del", "sadd", "srem", "smembers"),
    "AuthStore.authenticate_token": (*SCRIPTS, "hmget", "hget", "hset"),  # writes last_used
    "SessionStore.create": (*SCRIPTS, "hset", "expire", "sadd", "ttl"),
    "SessionStore.find": (*SCRIPTS, "hmget", "hget"),
    "SessionStore.end": (*TRANSACTION, "del", "srem"),
    # KEDA's redis scaler: an EVAL that asks the TYPE of the list, then its LLEN.
    "keda": ("eval", "evalsha", "type", "llen"),
    # The Redis pod's own user: reload the aclfile after a password rotation.
    "acl load": ("acl|load",),
}


_TYPE, _STREAM, _JOB, _WHO = "acl-type", "acl-stream", "j" + "a" * 12, "acl-who"
#: What replaces a sample value in a pattern: ``*``, but a job id has a fixed length, and
#: ``j`` and a ``?`` per hex digit keep the job record's pattern off the job's other keys.
_GLOBS = {_JOB: "j" + "?" * 12}


def pattern(build: Callable[..., str], *samples: str) -> str:
    """The key pattern of a :mod:`.keys` function: ``build(*samples)`` with each sample (a
    valid value, spelled nowhere else in the key) replaced by a glob."""
    key = build(*samples)
    for sample in samples:
        if key.count(sample) != 1:
            raise ValueError(f"sample {sample!r} is not one part of key {key!r}")
        key = key.replace(sample, _GLOBS.get(sample, "*"))
    return key


QUEUES = (pattern(keys.queue, _TYPE), pattern(keys.queue_stats, _TYPE))
STREAMS = (keys.stream_registry(), pattern(keys.stream_info, _STREAM))
WORKERS = (pattern(keys.worker_registry, _TYPE), pattern(keys.worker_info, _STREAM),
           keys.worker_types())
OUTPUT = (pattern(keys.out, _STREAM),)
FRAMES = (pattern(keys.frames, _STREAM),)
HISTORY = (keys.results_pattern(),)
JOB_QUEUES = (keys.job_queue_pattern(),)
PENDING_JOBS = (keys.jobs_pending(), keys.jobs_pending_messages(), keys.jobs_pending_leases())
JOBS = (keys.jobs(), keys.job_keys_pattern())
JOB_RESULTS = (pattern(keys.job, _JOB), pattern(keys.job_results, _JOB, _TYPE))
AUTH = (keys.auth_pattern(),)
RATES = (pattern(keys.rate_limit, _TYPE, _WHO),)
RULES = (pattern(keys.rules, _STREAM),)
SOURCES = (keys.sources(),)
_EVENT = "1234567-8"
LIVE_TRACKS = (pattern(keys.tracks, _STREAM),)
TRACKS = (*LIVE_TRACKS, pattern(keys.track_lease, _STREAM), keys.track_replicas(),
          pattern(keys.track_ids, _STREAM), pattern(keys.counts, _STREAM),
          pattern(keys.counts_history, _STREAM))
EVENTS = (keys.events(), pattern(keys.event_snapshot, _EVENT))
SNAPSHOT_INDEX = (keys.event_snapshots(),)  # written by the recorder only
COUNTS = (pattern(keys.counts, _STREAM), pattern(keys.counts_history, _STREAM))
POOL = (keys.sources(), pattern(keys.source_lease, _STREAM), keys.stream_pool())


@dataclass(frozen=True)
class ComponentAcl:
    """The Redis user of one component: what it does, its operations and its key patterns."""

    component: str
    does: str
    operations: tuple[str, ...]
    keys: tuple[str, ...]

    @property
    def user(self) -> str:
        """The ACL user name (prefixed: a managed Redis may serve other applications)."""
        return f"ei-{self.component}"

    @property
    def commands(self) -> tuple[str, ...]:
        """Every command of its operations, sorted, without repeats."""
        return tuple(sorted({*CONNECTION, *CLUSTER_CLIENT, *(c for op in self.operations
                                            for c in OPERATIONS[op])}))

    def rules(self, password: str) -> list[str]:
        """ACL SETUSER rules: from nothing, on, this password (as its SHA-256), these commands
        and key patterns, no Pub/Sub channel."""
        return ["reset", "on", "#" + password_hash(password), "resetchannels", "-@all",
                *(f"+{c}" for c in self.commands), *(f"~{k}" for k in self.keys)]


COMPONENTS: tuple[ComponentAcl, ...] = (
    ComponentAcl(
        "stream", "stores each frame once and pushes references to it to the queues of its "
                  "types; registers and heartbeats itself; a pool replica also reads the "
                  "sources and leases them",
        ("FrameStore.add", "FrameQueue.push", "Heartbeats.beat", "Heartbeats.remove",
         "SourceStore.all", "Leases"),
        FRAMES + QUEUES + STREAMS + POOL),
    ComponentAcl(
        "infer", "pops frames (fetching their JPEGs) and job frames of its type; publishes "
                 "results; heartbeats",
        ("FrameQueue.pop", "FrameQueue.stats", "FrameStore.fetch", "LeasedQueue.lease",
         "LeasedQueue.ack", "LeasedQueue.waiting", "JobStore.store_result",
         "OutputBroker.publish", "WorkerRegistry.beat", "Heartbeats.ids", "Heartbeats.remove"),
        QUEUES + FRAMES + JOB_QUEUES + JOB_RESULTS + OUTPUT + HISTORY + WORKERS),
    ComponentAcl(
        "websocket", "reads live output, live tracks and the stream list; checks sessions and "
                     "tokens",
        ("OutputBroker.read_live", "OutputBroker.latest", "OutputBroker.latest_tracks_id",
         "OutputBroker.attach_frames", "Heartbeats.ids", "AuthStore.authenticate_token",
         "SessionStore.find"),
        OUTPUT + FRAMES + LIVE_TRACKS + STREAMS + AUTH),
    ComponentAcl(
        "gateway", "the API: streams, snapshots, history, status, analysis jobs, rules, "
                   "sources, events, counts, users, sessions, rate limits",
        ("Heartbeats.members", "worker_types", "FrameQueue.stats", "OutputBroker.latest",
         "OutputBroker.read", "OutputBroker.attach_frames", "OutputBroker.history",
         "stream_known", "JobStore.create",
         "LeasedQueue.push", "JobStore.read", "JobStore.store_analytics", "JobStore.delete",
         "LeasedQueue.discard",
         "JobStore.check_room", "RateLimiter", "AuthStore", "SessionStore.create",
         "SessionStore.find", "SessionStore.end", "RuleStore.get", "RuleStore.put",
         "RuleStore.delete", "SourceStore.read", "SourceStore.write", "EventStore.query",
         "EventStore.snapshot", "read_counts"),
        STREAMS + WORKERS + QUEUES + OUTPUT + FRAMES + HISTORY + JOBS + PENDING_JOBS + JOB_QUEUES
        + AUTH + RATES + RULES + SOURCES + EVENTS + COUNTS),
    ComponentAcl(
        "analysis", "takes pending jobs, stores their frames and queues them for the workers",
        ("LeasedQueue.lease", "LeasedQueue.extend", "LeasedQueue.release", "LeasedQueue.ack",
         "LeasedQueue.waiting", "LeasedQueue.discard", "JobStore.read", "JobStore.update",
         "JobStore.store_frame"),
        PENDING_JOBS + JOBS + JOB_QUEUES),
    ComponentAcl(
        "track", "follows the live output of the streams it leases; writes their tracks, "
                 "counts, events and snapshots",
        ("Leases", "TrackStore.read", "TrackStore.write", "Heartbeats.ids",
         "OutputBroker.read", "FrameStore.fetch", "RuleStore.get", "EventRecorder"),
        TRACKS + EVENTS + SNAPSHOT_INDEX + OUTPUT + FRAMES + STREAMS + RULES),
    ComponentAcl(
        "admin", "ei auth, ei status, ei results prune",
        ("AuthStore", "Heartbeats.members", "worker_types", "FrameQueue.stats",
         "OutputBroker.prune_history", "JobStore.older_than", "JobStore.read",
         "JobStore.delete", "LeasedQueue.discard", "LeasedQueue.owners", "sweep_orphans"),
        AUTH + STREAMS + WORKERS + QUEUES + HISTORY + JOBS + PENDING_JOBS + JOB_QUEUES),
    ComponentAcl(
        "keda", "KEDA's scaler (gen-k8s-yaml.sh -a keda): the length of each frame queue",
        ("keda",), QUEUES[:1]),
    ComponentAcl(
        "ops", "the Redis pod itself: the readiness probe's PING, ACL LOAD after a rotation",
        ("acl load",), ()),
)

BY_COMPONENT: dict[str, ComponentAcl] = {c.component: c for c in COMPONENTS}

#: Passwords the renderer accepts: what a URL carries without escaping, long enough to be
#: unguessable (the aclfile keeps only their SHA-256, so they must be random, not chosen).
PASSWORD_RE = re.compile(r"^[A-Za-z0-9._~-]{16,128}$")


def password_hash(password: str) -> str:
    """The SHA-256 hex digest Redis keeps for a password (``#<hash>`` in an ACL rule)."""
    if not PASSWORD_RE.fullmatch(password):
        raise ValueError("a Redis password must be 16 to 128 of A-Z a-z 0-9 . _ ~ - "
                         "(the value is not shown)")
    return hashlib.sha256(password.encode()).hexdigest()


def _checked(passwords: Mapping[str, str]) -> list[ComponentAcl]:
    unknown = sorted(set(passwords) - set(BY_COMPONENT))
    if unknown:
        raise ValueError(f"unknown component(s) {', '.join(unknown)}: choose among "
                         f"{', '.join(BY_COMPONENT)}")
    return [c for c in COMPONENTS if c.component in passwords]


def aclfile(passwords: Mapping[str, str]) -> str:
    """An aclfile with the users of the components in ``passwords`` (component -> password)
    and the ``default`` user switched off: every client must say who it is."""
    lines = ["user default reset off"]
    lines += [" ".join(["user", c.user, *c.rules(passwords[c.component])])
              for c in _checked(passwords)]
    return "\n".join(lines) + "\n"


def apply(client: redis.Redis, passwords: Mapping[str, str]) -> None:
    """Create or replace the users of the components in ``passwords`` on a running server
    with ``ACL SETUSER`` (``client`` needs ACL rights). The ``default`` user is left alone:
    whoever applies decides whether it goes off."""
    for component in _checked(passwords):
        client.execute_command("ACL", "SETUSER", component.user,
                               *component.rules(passwords[component.component]))


def url(base: str, component: str, password: str) -> str:
    """``base`` (redis[s]://HOST:PORT/DB, no credentials) with the component's user and
    password (checked: URL-safe as they are)."""
    password_hash(password)
    scheme, rest = base.split("://", 1)
    return f"{scheme}://{BY_COMPONENT[component].user}:{password}@{rest}"


def _read_passwords(lines: Iterable[str]) -> dict[str, str]:
    found: dict[str, str] = {}
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) != 2:
            raise ValueError(f"line {n}: expected COMPONENT PASSWORD (the line is not shown)")
        found[parts[0]] = parts[1]
    return found


def main(argv: list[str] | None = None, stdin: Any = None, stdout: Any = None) -> int:
    """``python3 -m elastic_inference.core.acl``: ``COMPONENT PASSWORD`` lines on stdin, the
    aclfile on stdout; ``--components`` lists ``COMPONENT USER`` lines instead."""
    args = sys.argv[1:] if argv is None else argv
    out = stdout or sys.stdout
    if args == ["--components"]:
        out.writelines(f"{c.component} {c.user}\n" for c in COMPONENTS)
        return 0
    if args:
        sys.stderr.write("usage: python3 -m elastic_inference.core.acl [--components] "
                         "< 'COMPONENT PASSWORD' lines\n")
        return 2
    try:
        out.write(aclfile(_read_passwords(stdin or sys.stdin)))
    except ValueError as exc:
        sys.stderr.write(f"acl: {exc}\n")
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
