"""``ei results prune --older-than DAYS``: delete old result history and analysis jobs.

Live result history is trimmed by the workers as they publish (``EI_RESULTS_RETENTION``), but
a stream that stopped keeps its last history, and analysis jobs (frames and results) are kept
until deleted. This command removes both beyond an age, for a cron job or by hand, and sweeps
whatever jobs that no longer exist left behind (:mod:`.core.jobsweep`).
"""

from __future__ import annotations

import sys
import time

from ..core.broker import OutputBroker
from ..core.errors import ConfigError
from ..core.jobs import JobStore
from ..core.jobsweep import sweep_orphans
from ..core.redisconn import connect
from ..core.settings import PruneSettings, parse_settings

DAY = 86400.0


def prune(settings: PruneSettings, now: float | None = None) -> str:
    """Do (or with ``dry_run`` describe) the pruning; returns the report."""
    cutoff = (time.time() if now is None else now) - settings.older_than * DAY
    client = connect(settings.redis_url)
    try:
        trimmed = OutputBroker(client).prune_history(cutoff, dry_run=settings.dry_run)
        store = JobStore(client)
        jobs = store.older_than(cutoff)
        if not settings.dry_run:
            for job in jobs:
                store.delete(job)
        orphans = sweep_orphans(client, dry_run=settings.dry_run)
    finally:
        client.close()
    verb = "would delete" if settings.dry_run else "deleted"
    lines = [f"{verb} {sum(trimmed.values())} result entries of {len(trimmed)} stream(s) and "
             f"{len(jobs)} analysis job(s) older than {settings.older_than:g} day(s)"]
    lines += [f"  stream {s}: {n}" for s, n in sorted(trimmed.items())]
    lines += [f"  job {j}" for j in jobs]
    left = orphans.jobs()
    lines.append(f"{verb} what {len(left)} deleted job(s) left behind: {len(orphans.keys)} "
                 f"key(s), {len(orphans.indexed)} index entry(ies), messages in "
                 f"{len(orphans.queued)} queue(s)" + ("" if settings.dry_run else
                                                     f" ({orphans.messages} message(s))"))
    lines += [f"  orphan key {k}" for k in orphans.keys]
    lines += [f"  orphan messages of {j} in {q}" for q, ids in sorted(orphans.queued.items())
              for j in sorted(ids)]
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    if not argv or argv[0] != "prune":
        raise ConfigError("usage: ei results prune --older-than DAYS [--dry-run]")
    settings = parse_settings(PruneSettings, argv[1:], prog="ei results prune")
    if settings.older_than <= 0:
        raise ConfigError("--older-than DAYS (EI_OLDER_THAN) is required: delete what is older")
    sys.stdout.write(prune(settings) + "\n")
    return 0
