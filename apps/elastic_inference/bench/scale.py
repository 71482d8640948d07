"""``ei bench --scale``: many managed sources through the real services on one machine.

It starts its own Redis, ``ei infer`` workers, ``ei websocket``, ``ei gateway`` (auth on: a
session secret in their environment, a viewer token made with the project's AuthStore) and
``ei stream --pool`` replicas reading short MJPG clips cut from the sample videos; registers the
sources with :class:`.SourceStore`; waits until every one is live; then measures a steady window
with websocket clients receiving every stream and a poller timing ``/api/streams`` and
``/api/sources``. doc/scaling.md ("150 cameras") sizes a real site from these figures.
"""

from __future__ import annotations

import json
import logging
import math
import os
import resource
import secrets
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ..cli.table import table
from ..core import keys
from ..core.auth import Role
from ..core.authstore import AuthStore
from ..core.errors import EIError
from ..core.queue import DROP_REASONS, FrameQueue, QueueStats
from ..core.redisconn import connect
from ..core.registry import StreamRegistry, WorkerRegistry
from ..core.settings import BenchSettings, InferSettings
from ..core.sources import SourceConfig, SourceStore
from ..engine.models import resolve
from ..services.local_state import EmbeddedRedis, free_port
from .frames import sample_video
from .probes import cpu_model
from .scaleprobe import ApiPoller, Child, WsClient, hd_cost, make_clips, wait_listening

log = logging.getLogger(__name__)

CLIPS = 12  # distinct clips; source i reads clip i % CLIPS
WARMUP_S = 5.0  # after every source is live, before the window opens
MAX_WARMUP_S = 30.0  # ... or until each source's live output buffer is full, at most this
API_PATHS = ("/api/streams", "/api/sources")
KINDS = ("stream-pool", "infer", "websocket", "gateway")
#: The bench's own process: its websocket clients and API poller (the load, not the system).
CLIENTS = "bench clients"


@dataclass(frozen=True)
class Snapshot:
    """Counters at one instant; a figure is the difference of two."""

    t: float
    members: dict[str, dict[str, Any]]  # stream id -> registry info
    queue: QueueStats
    redis: dict[str, Any]
    commands: dict[str, Any]  # INFO commandstats
    cpu: dict[str, float]  # process kind -> CPU seconds
    ws: list[tuple[int, int]]  # per client: (frames, bytes)


class ScaleRun:
    """The processes of one run, started in order and stopped in reverse."""

    def __init__(self, settings: BenchSettings, url: str, workdir: Path) -> None:
        self.s = settings
        self.url = url
        self.workdir = workdir
        self.client = connect(url, socket_timeout=30)
        self.children: list[Child] = []
        self.ws: list[WsClient] = []
        self.poller: ApiPoller | None = None
        self.secret_env = {"EI_REDIS_URL": url,
                           "EI_SESSION_SECRET": secrets.token_urlsafe(32)}
        self.ids = [f"scale-{i:03d}" for i in range(settings.scale_sources)]
        self.baseline_memory = 0
        self.token = ""  # the name of the viewer token it made

    def _child(self, kind: str, args: list[str]) -> Child:
        child = Child(kind, args, self.workdir / "logs", self.secret_env)
        self.children.append(child)
        return child

    def start(self) -> None:
        s = self.s
        (self.workdir / "logs").mkdir()
        media = self.workdir / "media"
        media.mkdir()
        log.info("cutting %d clips of %s from the sample video", CLIPS, s.scale_size)
        clips = make_clips(sample_video(s.sample_dir, s.scale_type), media, CLIPS, s.scale_wh)
        created = AuthStore(self.client).create_token(Role.VIEWER)
        self.token = created.info.name
        headers = {"Authorization": "Bearer " + created.token}
        self.baseline_memory = int(self.client.info("memory")["used_memory"])
        log.info("starting %d worker(s) of %s", s.scale_workers, s.scale_type)
        for _ in range(s.scale_workers):
            self._child("infer", ["infer", "--type", s.scale_type, "--model-dir",
                                  str(s.model_dir), "--device", s.device, "--max-age", "1"])
        ws_port, gw_port = free_port(), free_port()
        ws = self._child("websocket", [
            "websocket", "--host", "127.0.0.1", "--port", str(ws_port),
            "--max-clients", str(s.scale_ws_clients + 50),
            "--max-ws-per-client", str(s.scale_ws_clients + 5)])
        gw = self._child("gateway", ["gateway", "--host", "127.0.0.1", "--port", str(gw_port),
                                     "--media-dir", str(media),
                                     "--spa-dir", str(self.workdir / "no-spa")])
        share = math.ceil(s.scale_sources / s.scale_replicas)
        for i in range(s.scale_replicas):
            self._child("stream-pool", ["stream", "--pool", "--media-dir", str(media),
                                        "--max-sources", str(share),
                                        "--replica-id", f"scale-{i}"])
        wait_listening(ws, ws_port)
        wait_listening(gw, gw_port)
        self._wait(lambda: self.client.zcard(keys.stream_pool()) >= s.scale_replicas, 60,
                   f"{s.scale_replicas} stream-pool replicas")
        self._wait(lambda: WorkerRegistry(self.client, s.scale_type).count() >= s.scale_workers,
                   180, f"{s.scale_workers} worker(s) to load the model")
        store = SourceStore(self.client)
        w = s.scale_wh[0]
        for i, sid in enumerate(self.ids):
            store.put(SourceConfig(sid, clips[i % len(clips)], (s.scale_type,), fps=s.scale_fps,
                                   max_width=w))
        log.info("%d sources registered; waiting until every one is live", len(self.ids))
        self._wait(lambda: self.live() >= len(self.ids), 60 + 0.5 * len(self.ids),
                   f"{len(self.ids)} live sources", lambda: f"{self.live()} live")
        self.ws = [WsClient(f"ws://127.0.0.1:{ws_port}/ws", headers)
                   for _ in range(s.scale_ws_clients)]
        for c in self.ws:
            c.start()
        for c in self.ws:
            c.connected.wait(60)
        self.poller = ApiPoller(f"http://127.0.0.1:{gw_port}", API_PATHS, headers)
        self.poller.start()

    def live(self) -> int:
        return sum(1 for m in StreamRegistry(self.client).members()
                   if m.info.get("state") == "live")

    def _wait(self, done: Any, timeout: float, what: str, status: Any = None) -> None:
        deadline = time.monotonic() + timeout
        while not done():
            for c in self.children:
                c.check()
            if time.monotonic() > deadline:
                raise EIError(f"timed out after {timeout:.0f} s waiting for {what}"
                              + (f" ({status()})" if status else ""))
            time.sleep(0.5)

    def snapshot(self) -> Snapshot:
        cpu = dict.fromkeys(KINDS, 0.0)
        for c in self.children:
            c.check()
            cpu[c.kind] += c.cpu_seconds()
        own = resource.getrusage(resource.RUSAGE_SELF)
        cpu[CLIENTS] = own.ru_utime + own.ru_stime
        return Snapshot(time.monotonic(),
                        {m.id: m.info for m in StreamRegistry(self.client).members()},
                        FrameQueue(self.client, self.s.scale_type).stats(),
                        dict(self.client.info()), dict(self.client.info("commandstats")), cpu,
                        [c.snapshot() for c in self.ws])

    def measure(self) -> dict[str, Any]:
        """After a warm-up long enough to fill every source's live output buffer (its memory
        is then steady), one window of ``scale_seconds``."""
        fill = InferSettings.out_maxlen / self.s.scale_fps + 1
        time.sleep(min(MAX_WARMUP_S, max(WARMUP_S, fill)))
        a = self.snapshot()
        deadline = a.t + self.s.scale_seconds
        while time.monotonic() < deadline:
            for c in self.children:
                c.check()
            time.sleep(min(1.0, max(0.0, deadline - time.monotonic())))
        b = self.snapshot()
        return self.figures(a, b)

    def figures(self, a: Snapshot, b: Snapshot) -> dict[str, Any]:
        n = len(self.ids)
        dt = b.t - a.t
        fps = sorted((b.members[i].get("frames", 0) - a.members[i].get("frames", 0)) / dt
                     for i in self.ids if i in a.members and i in b.members)
        sent = sum(fps) * dt
        drops = {r: b.queue.drops[r] - a.queue.drops[r] for r in DROP_REASONS}
        pushed = b.queue.pushed - a.queue.pushed
        processed = pushed - sum(drops.values()) - (b.queue.length - a.queue.length)
        ri, rb = a.redis, b.redis
        rcpu = (rb["used_cpu_sys"] + rb["used_cpu_user"]
                - ri["used_cpu_sys"] - ri["used_cpu_user"])
        cmds = rb["total_commands_processed"] - ri["total_commands_processed"]
        net_in = rb["total_net_input_bytes"] - ri["total_net_input_bytes"]
        net_out = rb["total_net_output_bytes"] - ri["total_net_output_bytes"]
        per_frame = max(1.0, sent)
        cpu = {k: b.cpu[k] - a.cpu[k] for k in KINDS}
        cpu["redis"] = rcpu
        cpu[CLIENTS] = b.cpu[CLIENTS] - a.cpu[CLIENTS]
        ws = [((fb - fa) / dt, (bb - ba) / dt) for (fa, ba), (fb, bb) in zip(a.ws, b.ws,
                                                                             strict=True)]
        members = list(b.members.values())
        sample = self.ids[0]
        results_len = int(self.client.xlen(keys.results(sample)))
        used = int(rb["used_memory"])
        return {
            "sources": {"registered": SourceStore(self.client).count(),
                        "live": sum(1 for m in members if m.get("state") == "live"),
                        "replicas": len({m.get("replica") for m in members}),
                        "fps_min": round(fps[0], 2) if fps else 0.0,
                        "fps_median": round(statistics.median(fps), 2) if fps else 0.0,
                        "fps_max": round(fps[-1], 2) if fps else 0.0},
            "frames": {"sent_per_s": round(sent / dt, 1), "pushed_per_s": round(pushed / dt, 1),
                       "processed_per_s": round(processed / dt, 1),
                       "drops": drops, "queue_length": b.queue.length},
            "redis": {
                "cpu_ms_per_s": round(1000 * rcpu / dt, 1),
                "cpu_ms_per_frame": round(1000 * rcpu / per_frame, 3),
                "used_memory_mb": round(used / 2**20, 1),
                "memory_per_source_kb": round((used - self.baseline_memory) / n / 1024, 1),
                "memory_growth_kb_per_s": round(
                    (used - int(ri["used_memory"])) / dt / 1024, 1),
                "ops_per_s": round(cmds / dt), "ops_per_frame": round(cmds / per_frame, 2),
                "in_bytes_per_frame": round(net_in / per_frame),
                "out_bytes_per_frame": round(net_out / per_frame),
                "out_stream_bytes": self._memory(keys.out(sample)),
                "frame_store_bytes": self._memory(keys.frames(sample)),
                "results_bytes_per_entry": round(
                    self._memory(keys.results(sample)) / max(1, results_len))},
            "redis_commands": _commands(a.commands, b.commands, per_frame),
            "api": self.poller.figures() if self.poller else {},
            "websocket": {
                "clients": len(self.ws),
                "failed": [c.error for c in self.ws if c.error],
                "frames_per_s_min": round(min((f for f, _ in ws), default=0.0), 1),
                "frames_per_s_median": round(statistics.median([f for f, _ in ws]), 1)
                if ws else 0.0,
                "kbytes_per_s_median": round(statistics.median([b for _, b in ws]) / 1024, 1)
                if ws else 0.0},
            "cpu": {k: {"cores": round(v / dt, 3),
                        "ms_per_frame": round(1000 * v / per_frame, 3)} for k, v in cpu.items()},
            "window_s": round(dt, 1),
        }

    def _memory(self, key: str) -> int:
        return int(self.client.memory_usage(key, samples=0) or 0)

    def close(self) -> None:
        for c in self.ws:
            c.halt.set()
        if self.poller is not None:
            self.poller.halt.set()
        for client in self.ws:
            client.join(5)
        for child in reversed(self.children):
            child.stop()
        try:  # on an EI_REDIS_URL of its own, leave nothing behind
            store = SourceStore(self.client)
            for sid in self.ids:
                store.delete(sid)
            if self.token:
                AuthStore(self.client).revoke_token(self.token)
        finally:
            self.client.close()


def _commands(a: dict[str, Any], b: dict[str, Any], frames: float,
              top: int = 12) -> dict[str, dict[str, float]]:
    """Calls and Redis CPU microseconds per frame sent, by command, the costliest first."""
    out = {}
    for name, after in b.items():
        before = a.get(name, {"calls": 0, "usec": 0})
        calls, usec = after["calls"] - before["calls"], after["usec"] - before["usec"]
        if calls > 0:
            out[name.removeprefix("cmdstat_")] = {"calls_per_frame": round(calls / frames, 3),
                                                  "usec_per_frame": round(usec / frames, 2)}
    ranked = sorted(out.items(), key=lambda kv: -kv[1]["usec_per_frame"])[:top]
    return dict(ranked)


def run_scale(settings: BenchSettings) -> int:
    s = settings
    started = time.monotonic()
    load_before = os.getloadavg()
    workdir = Path(tempfile.mkdtemp(prefix="ei-bench-scale-"))
    embedded = None
    if s.redis_url:
        url = s.redis_url
    else:
        embedded = EmbeddedRedis(workdir / "redis", persistent=False)
        url = embedded.url
    spec, _ = resolve(s.scale_type, None, s.model_dir)
    scale = ScaleRun(s, url, workdir)
    try:
        scale.start()
        measured = scale.measure()
    except BaseException:
        log.error("the services' logs are in %s", workdir / "logs")
        raise
    finally:
        scale.close()
        if embedded is not None:
            embedded.close()
    hd = hd_cost(sample_video(s.sample_dir, s.scale_type), workdir)
    report: dict[str, Any] = {
        "scale": {"sources": s.scale_sources, "fps": s.scale_fps, "size": s.scale_size,
                  "replicas": s.scale_replicas, "type": s.scale_type, "model": spec.name,
                  "workers": s.scale_workers, "ws_clients": s.scale_ws_clients,
                  "seconds": s.scale_seconds},
        "machine": {"cpu": cpu_model(), "cores": os.cpu_count(),
                    "load_before": [round(x, 2) for x in load_before],
                    "load_after": [round(x, 2) for x in os.getloadavg()]},
        **measured,
        "hd_frame": asdict(hd),
        "seconds": round(time.monotonic() - started, 1),
    }
    sys.stdout.write(render(report) + "\n")
    if s.json:
        Path(s.json).write_text(json.dumps(report, indent=2) + "\n")
    shutil.rmtree(workdir, ignore_errors=True)
    return 0


def render(r: dict[str, Any]) -> str:
    c, m, src, fr, rd = r["scale"], r["machine"], r["sources"], r["frames"], r["redis"]
    lines = [f"ei bench --scale: {c['sources']} sources of {c['size']} at {c['fps']:g} fps, "
             f"{c['replicas']} pool replicas, {c['workers']} {c['model']} worker(s), "
             f"{c['ws_clients']} websocket clients, {r['window_s']:g} s window",
             f"{m['cpu']}, {m['cores']} cores, load average {m['load_before'][0]:.2f} before, "
             f"{m['load_after'][0]:.2f} after", ""]
    rows: list[tuple[object, ...]] = [
        ("sources registered / live", f"{src['registered']} / {src['live']}"),
        ("replicas reading them", src["replicas"]),
        ("per-source fps min / median / max",
         f"{src['fps_min']:.2f} / {src['fps_median']:.2f} / {src['fps_max']:.2f}"),
        ("frames sent / pushed / inferred per s",
         f"{fr['sent_per_s']:.0f} / {fr['pushed_per_s']:.0f} / {fr['processed_per_s']:.0f}"),
        ("drops in window (overflow, stale, invalid)",
         ", ".join(str(fr["drops"][k]) for k in DROP_REASONS)),
        ("Redis CPU ms per s / per frame", f"{rd['cpu_ms_per_s']:.0f} / "
                                           f"{rd['cpu_ms_per_frame']:.3f}"),
        ("Redis memory MB / KB per source", f"{rd['used_memory_mb']:.1f} / "
                                            f"{rd['memory_per_source_kb']:.1f}"),
        ("Redis ops per s / per frame", f"{rd['ops_per_s']} / {rd['ops_per_frame']:.1f}"),
        ("Redis bytes in / out per frame", f"{rd['in_bytes_per_frame']} / "
                                           f"{rd['out_bytes_per_frame']}"),
    ]
    for path, a in r["api"].items():
        rows.append((f"GET {path} p50 / p99 ms ({a['requests']} requests, {a['failed']} failed)",
                     f"{a['p50_ms']:.1f} / {a['p99_ms']:.1f}"))
    w = r["websocket"]
    rows.append((f"websocket frames/s per client min / median ({w['clients']} clients, "
                 f"{len(w['failed'])} failed)",
                 f"{w['frames_per_s_min']:.0f} / {w['frames_per_s_median']:.0f} "
                 f"({w['kbytes_per_s_median']:.0f} KB/s)"))
    lines += [table(rows, ("figure", "measured")), ""]
    rows = [(k, f"{v['calls_per_frame']:.2f}", f"{v['usec_per_frame']:.1f}")
            for k, v in r["redis_commands"].items()]
    lines += ["REDIS COMMANDS per frame sent (INFO commandstats), costliest first",
              table(rows, ("command", "calls", "usec")), ""]
    rows = [(k, f"{v['cores']:.2f}", f"{v['ms_per_frame']:.3f}") for k, v in r["cpu"].items()]
    lines += ["CPU by process kind (per frame sent)", table(rows, ("process", "cores",
                                                                    "ms per frame")), ""]
    hd = r["hd_frame"]
    lines.append(f"1280x720 frame, one thread: JPEG q80 encode {hd['encode_ms']:.2f} ms, "
                 f"JPEG decode {hd['decode_ms']:.2f} ms, MPEG-4 Part 2 decode "
                 f"{hd['mpeg4_decode_ms']:.2f} ms, JPEG {hd['jpeg_kb']:.0f} KB")
    return "\n".join(lines)
