"""The soak's pure parts: when each fault happens, what the figures are, which bounds hold.

Nothing here touches a process or Redis, so the bounds logic is unit-tested on its own
(tests/unit/test_soak_report.py).
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

#: The acceptance bounds of issue 11: RSS growth after warm-up, fault recovery, job frames.
MAX_RSS_GROWTH = 0.10
MAX_RECOVERY_S = 10.0
#: Seconds of RSS samples whose median is the "after warm-up" and the "at the end" figure, so
#: one sample taken mid-allocation does not decide the bound.
RSS_WINDOW_S = 20.0
#: Services whose memory grows with the data on purpose: reported, never bounded.
UNBOUNDED = frozenset({"redis-server"})


@dataclass(frozen=True)
class Step:
    """One scheduled action, ``at`` seconds after the system was ready."""

    at: float
    action: str  # kill-worker | delete-job | restart-redis | oom | submit-job | warm
    arg: str = ""
    seconds: float = 0.0  # how long the fault lasts (oom)


@dataclass(frozen=True)
class Schedule:
    duration: float
    warmup: float
    steps: tuple[Step, ...]


def plan(duration: float, types: Sequence[str] = ("people", "car", "face"),
         oom_seconds: float = 30.0) -> Schedule:
    """Every fault as a fraction of ``duration``, so a short run exercises each of them.

    Workers are killed at 1/6 .. 5/6 of the run (every 5 min in 30 min), round-robin over the
    types; the doomed job is submitted at 0.20 and deleted as soon as it is under way, Redis
    restarts at 0.42, the out-of-memory episode starts at 0.58. Jobs to count are submitted at
    0.02 and then after every kill. Warm-up ends after 3 min (10 s before the first fault of a
    30-min run), or at 30 % of a short run: services keep growing for their first 1-2 minutes
    (thread pools filling up, malloc arenas), which is not a leak.
    """
    if duration < 120:
        raise ValueError("a soak needs at least 2 minutes to fit every fault")
    d = duration
    warm = min(180.0, max(d / 6 - 10, 0.3 * d))
    steps = [Step(warm, "warm")]
    for k in range(1, 6):
        steps.append(Step(d * k / 6, "kill-worker", types[(k - 1) % len(types)]))
    for f in (0.02, 0.18, 0.35, 0.52, 0.68):
        steps.append(Step(d * f, "submit-job"))
    steps.append(Step(d * 0.20, "submit-doomed-job"))
    steps.append(Step(d * 0.20, "delete-job"))  # waits until the job is under way
    steps.append(Step(d * 0.42, "restart-redis"))
    steps.append(Step(d * 0.58, "oom", seconds=min(oom_seconds, d / 12)))
    steps = [Step(round(s.at, 1), s.action, s.arg, round(s.seconds, 1)) for s in steps]
    return Schedule(d, warm, tuple(sorted(steps, key=lambda s: s.at)))


@dataclass(frozen=True)
class RssSample:
    t: float  # seconds after ready
    service: str
    pid: int
    rss_mb: float


@dataclass(frozen=True)
class RssFigure:
    service: str
    warm_mb: float | None
    end_mb: float | None
    peak_mb: float
    pids: tuple[int, ...]

    @property
    def growth(self) -> float | None:
        if not self.warm_mb or self.end_mb is None:
            return None
        return (self.end_mb - self.warm_mb) / self.warm_mb


def rss_figures(samples: Iterable[RssSample], warm_at: float, end_at: float,
                window: float = RSS_WINDOW_S) -> list[RssFigure]:
    """Per service: the median RSS over the ``window`` before ``warm_at`` and before ``end_at``.

    A service is named, not a pid: a worker killed and restarted is the same service, as it is
    for whoever runs the system.
    """
    by_service: dict[str, list[RssSample]] = {}
    for s in samples:
        by_service.setdefault(s.service, []).append(s)

    def median(rows: list[RssSample], until: float) -> float | None:
        vals = [r.rss_mb for r in rows if until - window <= r.t <= until]
        return statistics.median(vals) if vals else None

    out = []
    for name, rows in sorted(by_service.items()):
        pids = tuple(dict.fromkeys(r.pid for r in rows))
        out.append(RssFigure(name, median(rows, warm_at), median(rows, end_at),
                             max(r.rss_mb for r in rows), pids))
    return out


@dataclass(frozen=True)
class FaultResult:
    """One injected fault: when it ended and how long until the system was whole again."""

    kind: str
    target: str
    at: float  # seconds after ready
    ended: float
    recovered_after: float | None  # seconds after ``ended``; None: not within the wait
    detail: str = ""


@dataclass(frozen=True)
class JobTally:
    """One analysis job's exact frame accounting, per type.

    ``expected`` comes from the video itself (its frame count and the job's step), not from
    what the runner recorded, so a frame the runner lost is counted lost too.
    """

    job: str
    status: str
    expected: int  # per type
    lost: dict[str, int]
    duplicated: dict[str, int]
    frames_total: int | None = None


@dataclass(frozen=True)
class ChurnTally:
    kind: str  # ws | mjpeg
    sessions: int
    with_frames: int
    frames: int
    errors: dict[str, int] = field(default_factory=dict)
    error_times: tuple[float, ...] = ()  # seconds after ready
    empty_times: tuple[float, ...] = ()  # sessions that got neither a frame nor an error


def violations(rss: Sequence[RssFigure], faults: Sequence[FaultResult],
               jobs: Sequence[JobTally], max_growth: float = MAX_RSS_GROWTH,
               max_recovery: float = MAX_RECOVERY_S) -> list[str]:
    """Every broken bound, one line each; empty when the soak passed."""
    out = []
    for f in rss:
        if f.service in UNBOUNDED:
            continue
        if f.growth is None:
            out.append(f"{f.service}: no RSS figure after warm-up and at the end")
        elif f.growth > max_growth:
            out.append(f"{f.service}: RSS grew {f.growth:.1%} after warm-up "
                       f"({f.warm_mb:.0f} -> {f.end_mb:.0f} MB; bound {max_growth:.0%})")
    for fault in faults:
        if fault.recovered_after is None:
            out.append(f"{fault.kind} {fault.target} at {fault.at:.0f} s: not recovered"
                       + (f" ({fault.detail})" if fault.detail else ""))
        elif fault.recovered_after > max_recovery:
            out.append(f"{fault.kind} {fault.target} at {fault.at:.0f} s: recovered after "
                       f"{fault.recovered_after:.1f} s (bound {max_recovery:.0f} s)")
    for job in jobs:
        lost, dup = sum(job.lost.values()), sum(job.duplicated.values())
        if lost:
            out.append(f"job {job.job} ({job.status}): {lost} frame result(s) lost "
                       f"{_per_type(job.lost)}")
        if dup:
            out.append(f"job {job.job}: {dup} result(s) duplicated {_per_type(job.duplicated)}")
    return out


def _per_type(counts: dict[str, int]) -> str:
    return "(" + ", ".join(f"{t} {n}" for t, n in sorted(counts.items()) if n) + ")"


def _times(ts: Sequence[float], most: int = 8) -> str:
    return ", ".join(f"{t:.0f}" for t in ts[:most]) + " s" + (" ..." if len(ts) > most else "")


def _mb(v: float | None) -> str:
    return "-" if v is None else f"{v:.0f}"


def markdown(meta: dict[str, Any], rss: Sequence[RssFigure], faults: Sequence[FaultResult],
             jobs: Sequence[JobTally], churn: Sequence[ChurnTally], broken: Sequence[str]) -> str:
    """The report as doc/reliability.md's results section takes it (paste it in whole)."""
    lines = [f"### Soak of {meta['minutes']:g} min, {meta['date']} ({meta['commit']})", "",
             f"Machine: {meta['machine']}. Warm-up ended at {meta['warmup_s']:.0f} s. "
             f"Verdict: **{'PASS' if not broken else 'FAIL'}**.", "",
             "| service | RSS after warm-up (MB) | at the end (MB) | growth | peak (MB) | pids |",
             "|---|---:|---:|---:|---:|---:|"]
    for f in rss:
        growth = "-" if f.growth is None else f"{f.growth:+.1%}"
        if f.service in UNBOUNDED:
            growth += " (not bounded)"
        lines.append(f"| {f.service} | {_mb(f.warm_mb)} | {_mb(f.end_mb)} | {growth} "
                     f"| {f.peak_mb:.0f} | {len(f.pids)} |")
    lines += ["", "| fault | target | at (s) | ended (s) | recovered after (s) | detail |",
              "|---|---|---:|---:|---:|---|"]
    for x in faults:
        rec = "**not recovered**" if x.recovered_after is None else f"{x.recovered_after:.1f}"
        lines.append(f"| {x.kind} | {x.target} | {x.at:.0f} | {x.ended:.0f} | {rec} "
                     f"| {x.detail} |")
    lines += ["", "| job | status | expected per type | lost | duplicated |",
              "|---|---|---:|---:|---:|"]
    for j in jobs:
        lines.append(f"| {j.job} | {j.status} | {j.expected} | {sum(j.lost.values())} "
                     f"| {sum(j.duplicated.values())} |")
    lines += ["", "| clients | sessions | with frames | frames | errors |",
              "|---|---:|---:|---:|---|"]
    for c in churn:
        errs = ", ".join(f"{k} x{n}" for k, n in sorted(c.errors.items())) or "-"
        if c.error_times:
            errs += " at " + _times(c.error_times)
        if c.empty_times:
            errs += "; no frame at " + _times(c.empty_times)
        lines.append(f"| {c.kind} | {c.sessions} | {c.with_frames} | {c.frames} | {errs} |")
    lines += ["", "Broken bounds:" if broken else "Every bound held.", ""]
    lines += [f"- {b}" for b in broken]
    return "\n".join(lines).rstrip() + "\n"


def as_json(meta: dict[str, Any], schedule: Schedule, samples: Sequence[RssSample],
            rss: Sequence[RssFigure], faults: Sequence[FaultResult], jobs: Sequence[JobTally],
            churn: Sequence[ChurnTally], broken: Sequence[str]) -> dict[str, Any]:
    return {"meta": meta, "schedule": [asdict(s) for s in schedule.steps],
            "rss": [{**asdict(f), "growth": f.growth} for f in rss],
            "faults": [asdict(f) for f in faults], "jobs": [asdict(j) for j in jobs],
            "churn": [asdict(c) for c in churn], "violations": list(broken),
            "passed": not broken, "rss_samples": [asdict(s) for s in samples]}
