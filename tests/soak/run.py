"""The soak's timeline: start the system, churn clients, inject each fault on schedule, measure.

Faults run one at a time on this thread; each waits for its recovery (up to a tenth of the
run, 20-60 s, so a slow recovery is measured, not just failed) before the next step. RSS is
sampled from /proc every ``RSS_INTERVAL`` s on a thread of its own.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import shutil
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from elastic_inference.core import keys
from elastic_inference.core.jobs import JobStore

from .churn import Churn, delete_job, job_done, submit_job, tally_job, video_frames
from .report import (
    FaultResult,
    RssSample,
    Schedule,
    Step,
    as_json,
    markdown,
    rss_figures,
    violations,
)
from .system import STREAM_TYPES, System, rss_mb, wait_until

log = logging.getLogger(__name__)

RSS_INTERVAL = 5.0
#: A deleted job must leave no key behind within this long (issue 11, point 5).
DELETE_CLEAN_WAIT = 30.0
JOB_STEP = 10
DOOMED_STEP = 1
OOM_CAP = 1 << 20  # far below what Redis holds: every write that needs memory is refused


class Soak:
    def __init__(self, repo: Path, schedule: Schedule, out_dir: Path, fps: float,
                 drain: float) -> None:
        self.repo, self.schedule, self.out_dir, self.drain = repo, schedule, out_dir, drain
        self.fps = fps
        self.recovery_wait = min(60.0, max(20.0, schedule.duration / 10))
        self.stop = threading.Event()
        self.samples: list[RssSample] = []
        self.faults: list[FaultResult] = []
        self.jobs: list[str] = []
        self.doomed: str | None = None
        self.t0 = 0.0

    def now(self) -> float:
        return time.monotonic() - self.t0

    def run(self) -> int:
        meta = self._meta()  # the commit under test, before anyone commits during the run
        video = video_frames(self.repo / "samples" / "vtest.avi")
        sys_ = System(self.repo, self.fps)
        self.system = sys_
        churn: list[Churn] = []
        try:
            log.info("ei up on %s, Redis on port %d; waiting for results", sys_.base,
                     sys_.redis.port)
            sys_.wait_ready(180)
            self.t0 = time.monotonic()
            log.info("ready; soaking for %.0f s", self.schedule.duration)
            sampler = threading.Thread(target=self._sample_rss, daemon=True)
            sampler.start()
            churn = [Churn(k, sys_.base, self.stop, seed=i, clock=self.now)
                     for i, k in enumerate(("ws", "ws", "mjpeg", "mjpeg"))]
            for c in churn:
                c.start()
            for step in self.schedule.steps:
                wait = step.at - self.now()
                if wait > 0:
                    time.sleep(wait)
                log.info("%5.0f s: %s %s", self.now(), step.action, step.arg)
                self._do(step)
            time.sleep(max(0.0, self.schedule.duration - self.now()))
            self.stop.set()
            end_at = self.now()
            log.info("soak over; waiting up to %.0f s for the jobs to finish", self.drain)
            wait_until(lambda: all(job_done(sys_.client, j) for j in self.jobs), self.drain,
                       interval=2.0)
            tallies = [tally_job(sys_.client, j, JOB_STEP, video) for j in self.jobs]
        finally:
            self.stop.set()
            code = sys_.stop()
            shutil.copy(sys_.up.log_path, self.out_dir / "ei-up.log")
        rss = rss_figures(self.samples, self.schedule.warmup, end_at)
        tally = [c.tally() for c in churn]
        broken = violations(rss, self.faults, tallies)
        if code != 0:
            broken.append(f"ei up exited with status {code} when stopped")
        (self.out_dir / "soak.json").write_text(json.dumps(
            as_json(meta, self.schedule, self.samples, rss, self.faults, tallies, tally,
                    broken), indent=1))
        md = markdown(meta, rss, self.faults, tallies, tally, broken)
        (self.out_dir / "soak.md").write_text(md)
        print(md)
        return 1 if broken else 0

    def _meta(self) -> dict[str, Any]:
        commit = subprocess.run(["git", "-C", str(self.repo), "describe", "--always",
                                 "--dirty"], capture_output=True, text=True).stdout.strip()
        cpu = next((ln.split(":", 1)[1].strip() for ln in
                    Path("/proc/cpuinfo").read_text().splitlines()
                    if ln.startswith("model name")), platform.machine())
        return {"minutes": self.schedule.duration / 60, "date": time.strftime("%Y-%m-%d"),
                "commit": commit or "?", "warmup_s": self.schedule.warmup, "fps": self.fps,
                "machine": f"{cpu}, {os.cpu_count()} CPUs"}

    def _sample_rss(self) -> None:
        while not self.stop.is_set():
            t = self.now()
            for p in self.system.procs():
                mb = rss_mb(p.pid)
                if mb is not None:
                    self.samples.append(RssSample(round(t, 1), p.service, p.pid, round(mb, 1)))
            self.stop.wait(RSS_INTERVAL)

    # ----- the steps

    def _do(self, step: Step) -> None:
        actions: dict[str, Callable[[Step], None]] = {
            "warm": lambda s: None, "submit-job": self._submit, "kill-worker": self._kill,
            "submit-doomed-job": self._submit_doomed, "delete-job": self._delete,
            "restart-redis": self._restart, "oom": self._oom}
        try:
            actions[step.action](step)
        except Exception as exc:
            log.exception("step %s failed", step.action)
            self.faults.append(FaultResult(step.action, step.arg, step.at, self.now(), None,
                                           f"could not run: {exc}"))

    def _submit(self, step: Step) -> None:
        self.jobs.append(submit_job(self.system.base, JOB_STEP, f"soak {len(self.jobs)}"))

    def _submit_doomed(self, step: Step) -> None:
        self.doomed = submit_job(self.system.base, DOOMED_STEP, "soak: deleted mid-way")

    def _fault(self, kind: str, target: str, at: float, check: Callable[[], object],
               detail: str = "", explain: Callable[[], str] | None = None) -> None:
        """Record a fault that ended now, once ``check`` holds (or the wait ran out, and then
        ``explain`` says what was still wrong)."""
        ended = self.now()
        took = wait_until(check, self.recovery_wait)
        if took is None and explain is not None:
            detail += f"; after {self.recovery_wait:.0f} s: {explain()}"
        self.faults.append(FaultResult(kind, target, round(at, 1), round(ended, 1),
                                       None if took is None else round(took, 1), detail))
        log.info("%s %s: %s", kind, target,
                 "not recovered" if took is None else f"recovered after {took:.1f} s")

    def _kill(self, step: Step) -> None:
        """Back when the supervisor's new worker publishes for that type's streams."""
        sys_, t = self.system, step.arg
        at = self.now()
        old = sys_.kill_worker(t)
        streams = [s for s, st in STREAM_TYPES.items() if st == t]
        seen: dict[str, float] = {}

        def back() -> bool:
            if "new" not in seen:
                pid = sys_.pid_of(f"infer-{t}")
                if pid is None or pid == old:
                    return False
                seen["new"] = time.time()
            return sys_.published_since(seen["new"], streams)

        self._fault("worker SIGKILL", f"infer-{t}", at, back, f"pid {old}",
                    explain=lambda: "no new worker" if "new" not in seen
                    else self._silent(seen["new"]))

    def _silent(self, since: float) -> str:
        silent = [st for st in STREAM_TYPES if not self.system.published_since(since, [st])]
        return "no result since from " + ", ".join(silent) if silent else "publishing again"

    def _delete(self, step: Step) -> None:
        """Clean when no key and no queued message names the job any more."""
        if self.doomed is None:
            raise RuntimeError("no job to delete")
        doomed = self.doomed
        store = JobStore(self.system.client)

        def midway() -> bool:
            job = store.get(doomed)
            return job is not None and job["status"] in ("extracting", "processing") \
                and job["frames_read"] > 0

        # The runner may still be on the job before; a job of every frame takes minutes.
        wait_until(midway, max(self.recovery_wait, self.schedule.duration / 10))
        at = self.now()
        status = delete_job(self.system.base, doomed)
        left: list[str] = []

        def clean() -> bool:
            left[:] = self.system.keys_containing(doomed)
            return not left

        ended = self.now()
        took = wait_until(clean, DELETE_CLEAN_WAIT)
        detail = f"deleted while {status}"
        if status not in ("extracting", "processing"):
            detail += " (not mid-way: the fault did not happen as planned)"
            took = None
        if took is None and left:
            detail += f"; left: {', '.join(sorted(left)[:4])}" + (" ..." if len(left) > 4
                                                                   else "")
        log.info("job DELETE %s (%s): %s", doomed, status,
                 "left keys behind" if took is None else f"clean after {took:.1f} s")
        self.faults.append(FaultResult("job DELETE", doomed, round(at, 1),
                                       round(ended, 1), None if took is None else round(took, 1),
                                       detail))

    def _restart(self, step: Step) -> None:
        """Back when every stream has published again since Redis came back."""
        at = self.now()
        jobs = self.system.client.zcard(keys.jobs())
        self.system.restart_redis(down_for=1.0)
        up = time.time()
        kept = self.system.client.zcard(keys.jobs())
        self._fault("Redis restart", "redis-server", at,
                    lambda: self.system.published_since(up),
                    f"1 s down; jobs before {jobs}, after {kept}"
                    + ("" if kept == jobs else " (DATA LOST)"), explain=lambda: self._silent(up))

    def _oom(self, step: Step) -> None:
        """``maxmemory`` far below use (noeviction) for ``step.seconds``; back when every stream
        has published again since memory was freed."""
        at = self.now()
        used = self.system.used_memory()
        self.system.set_maxmemory(OOM_CAP)
        time.sleep(step.seconds)
        self.system.set_maxmemory(0)
        freed = time.time()
        self._fault("Redis OOM", "redis-server", at,
                    lambda: self.system.published_since(freed),
                    f"maxmemory 1 MB for {step.seconds:.0f} s (used {used >> 20} MB)",
                    explain=lambda: self._silent(freed))
