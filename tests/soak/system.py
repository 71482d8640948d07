"""The system under soak: its own redis-server and ``ei up``, seen through /proc and Redis."""

from __future__ import annotations

import os
import shutil
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import redis

from elastic_inference.core import keys
from elastic_inference.services.local import SAMPLE_STREAMS
from tests.processes import Service, get_json, wait_for
from tests.redis_server import RedisServer, free_port

#: Each live stream of ``ei up`` and the type its worker serves.
STREAM_TYPES: dict[str, str] = {sid: types[0] for sid, _, types in SAMPLE_STREAMS}
#: Redis with its append-only file, so a restart keeps jobs (fsync every second, and a clean
#: SIGTERM shutdown writes the rest), and no memory cap until the out-of-memory episode.
REDIS_CONFIG = ("--appendonly", "yes", "--appendfsync", "everysec", "--maxmemory", "0",
                "--maxmemory-policy", "noeviction")


@dataclass(frozen=True)
class Proc:
    pid: int
    service: str  # infer-people, stream-vtest-car, gateway, ...


def children(parent: int) -> list[int]:
    """Pids whose parent is ``parent`` (the children of ``ei up``: its services)."""
    out = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        if int(fields[1]) == parent and fields[0] != "Z":  # a zombie is dead, not a service
            out.append(int(entry.name))
    return out


def service_name(pid: int) -> str | None:
    """``ei`` service of a process from its argv: ``infer-TYPE``, ``stream-ID`` or the command."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")
    except OSError:
        return None
    if "elastic_inference.cli" not in argv:
        return None
    args = argv[argv.index("elastic_inference.cli") + 1:]
    if not args:
        return None
    for cmd, flag in (("infer", "--type"), ("stream", "--stream-id")):
        if args[0] == cmd and flag in args:
            return f"{cmd}-{args[args.index(flag) + 1]}"
    return args[0]


def rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


class System:
    """A redis-server this harness owns (restart, memory cap) and ``ei up`` against it."""

    def __init__(self, repo: Path, fps: float) -> None:
        self.repo = repo
        self.redis = RedisServer(config=REDIS_CONFIG).start()
        self.client = redis.Redis.from_url(self.redis.url, socket_timeout=5,
                                           socket_connect_timeout=2)
        self.port, self.ws_port = free_port(), free_port()
        self.up = Service(["up", "--port", str(self.port), "--ws-port", str(self.ws_port),
                           "--model-dir", str(repo / "models"),
                           "--sample-dir", str(repo / "samples"),
                           "--spa-dir", str(repo / "spa" / "dist"), "--fps", f"{fps:g}",
                           # Redis is restarted empty here, users and tokens with it: the
                           # soak measures staying up, on loopback (credentials: test_access).
                           "--no-auth"],
                          env={"EI_REDIS_URL": self.redis.url}, own_group=True)
        self.base = f"http://127.0.0.1:{self.port}"

    def wait_ready(self, timeout: float) -> None:
        """Every sample stream listed and publishing results."""
        api = f"{self.base}/api/streams"

        def ready() -> bool:
            if not self.up.alive():
                raise SystemExit("ei up exited:\n" + self.up.output()[-3000:])
            return all(get_json(f"{api}/{s}/latest")[0] == 200 for s in STREAM_TYPES)

        wait_for(ready, timeout, "every sample stream to publish results", interval=1.0)

    def procs(self) -> list[Proc]:
        """``ei up``, its services and the redis-server, named."""
        out = [Proc(self.up.proc.pid, "up")]
        for pid in children(self.up.proc.pid):
            name = service_name(pid)
            if name is not None:
                out.append(Proc(pid, name))
        if self.redis.proc is not None:
            out.append(Proc(self.redis.proc.pid, "redis-server"))
        return out

    def pid_of(self, service: str) -> int | None:
        return next((p.pid for p in self.procs() if p.service == service), None)

    # ----- probes (any Redis error means "not yet")

    def newest_output_ms(self, stream: str) -> int:
        """Server time (ms) of a stream's newest published result; 0 when none or unknown."""
        try:
            entries = self.client.xrevrange(keys.out(stream), count=1)
        except redis.RedisError:
            return 0
        return int(entries[0][0].split(b"-")[0]) if entries else 0

    def published_since(self, since: float, streams: list[str] | None = None) -> bool:
        """Whether every stream (or those named) has published a result after ``since``."""
        return all(self.newest_output_ms(s) > since * 1000 for s in streams or STREAM_TYPES)

    # ----- faults

    def kill_worker(self, infer_type: str) -> int:
        """SIGKILL the worker of ``infer_type``; returns its pid."""
        pid = self.pid_of(f"infer-{infer_type}")
        if pid is None:
            raise RuntimeError(f"no worker of type {infer_type} to kill")
        os.kill(pid, signal.SIGKILL)
        return pid

    def restart_redis(self, down_for: float = 1.0) -> None:
        """SIGTERM (the AOF is flushed), ``down_for`` seconds down, start on the same port and
        directory (the AOF is loaded)."""
        self.redis.restart(down_for)

    def set_maxmemory(self, nbytes: int) -> None:
        self.client.config_set("maxmemory", nbytes)

    def used_memory(self) -> int:
        return int(self.client.info("memory")["used_memory"])

    def keys_containing(self, text: str) -> list[str]:
        """Every key whose name contains ``text``, and every job-queue id starting with it."""
        found = [k.decode() for k in self.client.scan_iter(match=f"*{text}*", count=1000)]
        for t in set(STREAM_TYPES.values()):
            ids = self.client.lrange(keys.job_queue(t), 0, -1)
            found += [f"{keys.job_queue(t)}[{i.decode()}]" for i in ids
                      if i.decode().startswith(f"{text}:")]
        return found

    def stop(self) -> int:
        """Ctrl-C as a terminal sends it, then the redis-server and its files; ``ei up``'s exit
        code."""
        self.up.send(signal.SIGINT, group=True)
        code = self.up.stop(timeout=40)
        self.client.close()
        self.redis.stop()
        shutil.rmtree(self.redis.dir, ignore_errors=True)  # the AOF: hundreds of MB by then
        return code


def wait_until(check: Callable[[], object], timeout: float, interval: float = 0.2
               ) -> float | None:
    """Seconds until ``check()`` held (errors count as "not yet"); None after ``timeout``."""
    start = time.monotonic()
    while True:
        try:
            if check():
                return time.monotonic() - start
        except (redis.RedisError, OSError):
            pass
        if time.monotonic() - start > timeout:
            return None
        time.sleep(interval)
