"""Finding and removing what deleted analysis jobs left behind (``ei results prune``).

A job's keys and queued messages exist only while its record does (:mod:`.jobs`), but a
process killed half-way, a hand-made ``DEL`` or an older release can still leave some: frames or
results of a job whose record is gone, message ids of such a job in a type's queue (where they
would count towards back-pressure), or its id in the job index or pending-jobs queue. A job is
an orphan when its record ``ei:job:{id}`` does not exist; a record is never re-created under the
same random id, so removing an orphan's keys cannot race with a live job.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from . import keys
from .leased import LeasedQueue
from .redisconn import RedisClient
from .text import as_text


@dataclass
class Orphans:
    """What belongs to jobs that no longer exist."""

    keys: list[str] = field(default_factory=list)  # frames and results HASHes
    indexed: list[str] = field(default_factory=list)  # ids in the job index (ei:jobs)
    queued: dict[str, set[str]] = field(default_factory=dict)  # queue name -> job ids
    messages: int = 0  # queued messages removed (only known after a sweep)

    def jobs(self) -> set[str]:
        """Every job id that left something behind."""
        found = {j for k in self.keys if (j := keys.job_of_key(k)) is not None}
        found.update(self.indexed)
        for ids in self.queued.values():
            found |= ids
        return found


def _missing(client: RedisClient, job_ids: set[str]) -> set[str]:
    """The ids among ``job_ids`` without a record."""
    ordered = sorted(job_ids)
    pipe = client.pipeline(transaction=False)
    for j in ordered:
        pipe.exists(keys.job(j))
    return {j for j, n in zip(ordered, pipe.execute(), strict=True) if not n}


def _queues(client: RedisClient) -> dict[str, LeasedQueue]:
    """Every type's job queue that exists, and the pending-jobs queue."""
    types = {t for k in client.scan_iter(match=keys.job_queue_pattern(), count=500)
             if (t := keys.job_queue_type(as_text(k))) is not None}
    found = {keys.job_queue(t): LeasedQueue.for_type(client, t) for t in sorted(types)}
    found[keys.jobs_pending()] = LeasedQueue.pending_jobs(client)
    return found


def find_orphans(client: RedisClient) -> Orphans:
    """Look (SCAN, no blocking command) for everything of jobs without a record."""
    orphans = Orphans()
    by_job: dict[str, list[str]] = {}
    for raw in client.scan_iter(match=keys.job_keys_pattern(), count=500):
        name = as_text(raw)
        job_id = keys.job_of_key(name)
        if job_id is not None and name != keys.job(job_id):
            by_job.setdefault(job_id, []).append(name)
    dead = _missing(client, set(by_job))
    orphans.keys = sorted(k for j in dead for k in by_job[j])
    indexed = {as_text(i) for i in client.zrange(keys.jobs(), 0, -1)}
    orphans.indexed = sorted(_missing(client, indexed))
    for name, queue in _queues(client).items():
        owners = {o for o in queue.owners() if keys.JOB_ID_RE.fullmatch(o)}
        gone = _missing(client, owners)
        if gone:
            orphans.queued[name] = gone
    return orphans


def sweep_orphans(client: RedisClient, dry_run: bool = False) -> Orphans:
    """Remove (unless ``dry_run``) what :func:`find_orphans` finds; returns it."""
    orphans = find_orphans(client)
    if dry_run:
        return orphans
    if orphans.keys:
        client.unlink(*orphans.keys)
    if orphans.indexed:
        client.zrem(keys.jobs(), *orphans.indexed)
    queues = _queues(client)
    for name, job_ids in orphans.queued.items():
        orphans.messages += queues[name].discard(sorted(job_ids))
    return orphans
