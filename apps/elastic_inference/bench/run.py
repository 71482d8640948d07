"""``ei bench``: run every measurement in order, then print the report (``.report``) and
write JSON."""

from __future__ import annotations

import json
import logging
import math
import os
import platform
import sys
import tempfile
import threading
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from ..core import keys
from ..core.errors import ConfigError
from ..core.redisconn import connect
from ..core.result import Result, count_matched, decode_result
from ..core.runtime import setup_logging
from ..core.settings import BenchSettings, parse_settings
from ..engine.factory import load_detector
from ..engine.models import BUILTIN_MODELS, resolve
from ..engine.openvino_runtime import model_input_shape, openvino_version
from ..engine.preprocess import decode_jpeg, reduction_for, reuse_frame_memory
from .baseline import OriginalDesignWorker
from .frames import cycle, sample_video, video_jpegs
from .harness import Drain, LivePhase, WorkerProcess, fill_queue, measure_drain, run_live
from .probes import Rate, cpu_model, decode_only, detector_only, model_only_fps
from .report import MAX_AGE, STREAM_FPS, Int8Figures, ModelFigures, checks, render
from .rounds import FULL, QUICK, Limits, Plan, Round, median_round
from .storage import StorageFigure, measure_storage
from .tracking import measure_tracker

log = logging.getLogger(__name__)

HD = (1280, 720)
SMALL = (640, 360)
STOP_WAIT = 30.0  # for a worker to exit by itself after ``max_frames``


class Bench:
    """One bench run against one Redis; owns the frames and the measurement order."""

    def __init__(self, settings: BenchSettings, redis_url: str, redis_pid: int | None,
                 plan: Plan) -> None:
        self.s = settings
        self.url = redis_url
        self.redis_pid = redis_pid
        self.plan = plan
        self.client = connect(redis_url, socket_timeout=30)
        self.cores = os.cpu_count() or 1
        self._frames: dict[tuple[str, tuple[int, int]], list[bytes]] = {}

    def frames(self, infer_type: str, size: tuple[int, int], count: int) -> list[bytes]:
        key = (infer_type, size)
        have = self._frames.get(key, [])
        if len(have) < count:
            have = video_jpegs(sample_video(self.s.sample_dir, infer_type), count, size)
            self._frames[key] = have
        return have[:count]

    def model_only(self, path: Path, batch: int, precision: str = "") -> float:
        """benchmark_app's figure, with as many frames per request as the worker runs."""
        shape = (batch, *model_input_shape(path)[1:]) if batch > 1 else ()
        return model_only_fps(path, self.s.device, self.plan.probe_seconds, precision=precision,
                              shape=shape)

    def _drain_frames(self, expected_fps: float) -> int:
        return int(max(60, min(self.plan.max_frames, expected_fps * self.plan.drain_seconds)))

    def measure(self, infer_type: str, model: str, full: bool) -> ModelFigures:
        """All figures for one model; ``full`` adds baseline, latency and density."""
        spec, _ = resolve(infer_type, model, self.s.model_dir)
        w, h = spec.input_w, spec.input_h
        reduction = reduction_for(*HD, (w, h))
        fig = ModelFigures(infer_type, spec.name, f"{w}x{h}", reduction)
        hd = self.frames(infer_type, HD, 100)
        detector = load_detector(infer_type, self.s.model_dir, self.s.device, spec.name)
        try:
            inference = detector_only(detector, HD, self.plan.probe_seconds)
        finally:
            detector.close()
        fig.detector_only_fps = inference.fps
        fig.batch = detector.batch
        if fig.batch > 1:
            fig.model_only_fps_single = self.model_only(spec.path(self.s.model_dir), 1)
        rounds = [self._round(spec.name, infer_type, spec.path(self.s.model_dir), fig, hd,
                              small=full and r == 0, index=r)
                  for r in range(self.plan.rounds)]
        median = median_round(rounds)
        fig.rounds = [round(r.share, 3) for r in rounds]
        fig.drift = [round(r.drift, 3) for r in rounds]
        limit = median.limit
        fig.model_only_fps = limit.model_only_fps
        fig.decode_only_fps = limit.decode.fps
        fig.worker_fps = median.drains[0].fps
        fig.cpu_ms_per_frame = self._profile(median.drains[0], limit.decode, inference)
        fig.threads_ms_per_frame = {
            name: round(ms, 3) for name, ms in sorted(
                median.drains[0].threads_ms_per_frame.items(), key=lambda kv: -kv[1])}
        if full:
            fig.worker_fps_small = rounds[0].drains[1].fps
            fig.baseline_fps = self._baseline(infer_type, spec.name, hd)
            self._live(fig, hd)
        return fig

    def _round(self, model: str, infer_type: str, path: Path, fig: ModelFigures,
               hd: list[bytes], small: bool, index: int) -> Round:
        """Model only, decode only, a real worker draining 1280x720 frames (and 640x360 ones
        after them with ``small``), then decode only and model only again; the worker's exit
        code and memory go into ``fig``."""
        log.info("%s: round %d of %d: model only (benchmark_app, %d frames per request), "
                 "decode only", model, index + 1, self.plan.rounds, fig.batch)
        model_only = self.model_only(path, fig.batch)
        decode = decode_only(hd, fig.reduction, self.cores, self.plan.probe_seconds)
        expected = min(model_only, decode.fps)
        n_hd = self._drain_frames(expected)
        n_small = self._drain_frames(expected * 1.5) if small else 0
        log.info("%s: worker draining %d frames of 1280x720%s", model, n_hd,
                 f" and {n_small} of 640x360" if n_small else "")
        groups: list[tuple[str, list[bytes], tuple[int, int]]] = [
            ("bench-hd", cycle(hd, n_hd), HD)]
        if n_small:
            groups.append(("bench-small", cycle(self.frames(infer_type, SMALL, 100),
                                                       n_small), SMALL))
        drains, worker = self._drain(infer_type, model, groups)
        fig.worker_exit_code = fig.worker_exit_code or (worker.proc.returncode or 0)
        fig.worker_rss_mb = max(fig.worker_rss_mb, worker.peak_rss_mb)
        log.info("%s: round %d of %d: decode only, model only again", model, index + 1,
                 self.plan.rounds)
        decode_after = decode_only(hd, fig.reduction, self.cores, self.plan.probe_seconds)
        after = Limits(self.model_only(path, fig.batch), decode_after)
        return Round(Limits(model_only, decode), after, drains)

    def _drain(self, infer_type: str, model: str,
               groups: list[tuple[str, list[bytes], tuple[int, int]]], precision: str = ""
               ) -> tuple[list[Drain], WorkerProcess]:
        """A real worker drains the pre-filled ``groups`` (stream, frames, size); one per group."""
        fill_queue(self.client, infer_type, groups)
        worker = WorkerProcess(self.url, infer_type, model, self.s.model_dir, self.s.device,
                               max_age=0, max_frames=sum(len(g[1]) for g in groups),
                               precision=precision)
        try:
            drains = measure_drain(self.client, worker, [g[0] for g in groups],
                                   [len(g[1]) for g in groups], self.redis_pid)
        finally:
            worker.stop(exit_wait=STOP_WAIT)
        return drains, worker

    def worker_fps(self, infer_type: str, model: str, precision: str,
                   expected_fps: float) -> float:
        """Worker throughput alone (1280x720 drain), e.g. with FP32 forced to true f32."""
        n = self._drain_frames(expected_fps)
        log.info("%s: worker (precision %s) draining %d frames", model, precision or "default",
                 n)
        drains, _ = self._drain(infer_type, model,
                                [("bench-hd", cycle(self.frames(infer_type, HD, 100), n), HD)],
                                precision)
        return drains[0].fps

    @staticmethod
    def _profile(drain: Drain, decode: Rate, inference: Rate) -> dict[str, float]:
        """CPU ms per frame: the worker's and Redis's, beside decoding's and inference's own."""
        return {"worker": round(drain.cpu_ms_per_frame, 3),
                "redis": round(drain.redis_cpu_ms_per_frame, 3),
                "decode_alone": round(decode.cpu_ms_per_frame, 3),
                "inference_alone": round(inference.cpu_ms_per_frame, 3),
                "rest": round(drain.cpu_ms_per_frame - decode.cpu_ms_per_frame
                              - inference.cpu_ms_per_frame, 3)}

    def _baseline(self, infer_type: str, model: str, hd: list[bytes]) -> float:
        log.info("%s: original design (synchronous, full decode, re-encode)", model)
        original = OriginalDesignWorker(self.client, infer_type, self.s.model_dir,
                                        self.s.device, model)
        try:
            # Its speed is unknown until measured: time a few frames, then size the run.
            fill_queue(self.client, infer_type, [("bench-original", hd[:10], HD)],
                       by_ref=False)
            start = time.perf_counter()
            original.run(10, threading.Event())
            first = 10 / (time.perf_counter() - start)
            n = int(max(30, min(self.plan.max_frames, first * self.plan.baseline_seconds)))
            original.reset()
            fill_queue(self.client, infer_type, [("bench-original", cycle(hd, n), HD)],
                       by_ref=False)
            original.run(n, threading.Event())
            return original.throughput()
        finally:
            original.close()
            self.client.delete(keys.queue(infer_type))

    def _live(self, fig: ModelFigures, hd: list[bytes]) -> None:
        """Latency at half and twice capacity, then density, on one live worker."""
        worker = WorkerProcess(self.url, fig.type, fig.model, self.s.model_dir, self.s.device,
                               max_age=MAX_AGE)
        try:
            worker.wait_registered(self.client)
            for name, factor in (("half", 0.5), ("overload", 2.0)):
                log.info("%s: latency at %.1fx capacity (%.0f fps)", fig.model, factor,
                         factor * fig.worker_fps)
                phase = run_live(self.client, fig.type, [f"bench-{name}"],
                                 factor * fig.worker_fps, hd, HD, self.plan.live_seconds)
                setattr(fig, f"latency_{name}", _phase(phase))
            fig.density_streams = self._density(fig)
        finally:
            code = worker.stop()
            fig.worker_exit_code = fig.worker_exit_code or code
            fig.worker_rss_mb = max(fig.worker_rss_mb, worker.peak_rss_mb)

    def _density(self, fig: ModelFigures) -> int:
        """Most 640x360 streams at 15 fps with no drop: bisection below the capacity estimate.

        The load generator shares the machine with the worker, so the estimate from the
        pre-filled drain is an upper bound, not the answer; the search starts well below it.
        """
        small = self.frames(fig.type, SMALL, 100)
        estimate = max(1, math.floor(fig.worker_fps_small / STREAM_FPS))
        good, bad = 0, estimate + 1
        n = max(1, round(estimate * 0.6))
        for _ in range(self.plan.density_tries):
            log.info("%s: density, %d streams of 640x360 at %.0f fps", fig.model, n, STREAM_FPS)
            phase = run_live(self.client, fig.type, [f"bench-s{i}" for i in range(n)],
                             n * STREAM_FPS, small, SMALL, self.plan.density_seconds)
            if phase.drops == 0 and phase.published == phase.pushed:
                good = n
            else:
                bad = n
            if bad - good <= 1:
                break
            n = (good + bad) // 2
        return good

    def agreement(self, infer_type: str, fp32: str, int8: str, frames: int) -> tuple[int, ...]:
        """(FP32 detections, INT8 detections, matched) over the same decoded frames."""
        images = [decode_jpeg(j) for j in self.frames(infer_type, HD, frames)]
        a = load_detector(infer_type, self.s.model_dir, self.s.device, fp32)
        b = load_detector(infer_type, self.s.model_dir, self.s.device, int8)
        try:
            ref, cand = a.infer(images), b.infer(images)
        finally:
            a.close()
            b.close()
        return (sum(map(len, ref)), sum(map(len, cand)),
                sum(count_matched(r, c) for r, c in zip(ref, cand, strict=True)))

    def sample_result(self) -> Result | None:
        """A result a worker published in the last 1280x720 drain, of median size."""
        raw = sorted((fields[b"result"] for _, fields in
                      self.client.xrevrange(keys.results("bench-hd"), count=200)), key=len)
        return decode_result(raw[len(raw) // 2]) if raw else None

    def storage(self, result: Result) -> list[StorageFigure]:
        """Bytes per 1280x720 frame written to Redis and sent to a websocket viewer."""
        log.info("frame storage: bytes per frame for 1 and 3 types%s",
                 ", with a websocket viewer" if self.plan.storage_websocket else "")
        jpegs = self.frames(result.type, HD, 100)[:self.plan.storage_frames]
        return measure_storage(self.client, self.url, jpegs, HD, result,
                               self.plan.storage_websocket)

    def close(self) -> None:
        self.client.close()


def _phase(p: LivePhase) -> dict[str, float]:
    return {k: round(float(v), 2) for k, v in asdict(p).items()}


def run(settings: BenchSettings) -> int:
    plan = QUICK if settings.quick else FULL
    started = time.monotonic()
    reuse_frame_memory()  # decode-only and the other in-process probes run as the worker does
    embedded = None
    if settings.redis_url:
        url, pid = settings.redis_url, None
    else:
        from ..services.local import EmbeddedRedis

        embedded = EmbeddedRedis(Path(tempfile.mkdtemp(prefix="ei-bench-")), persistent=False)
        url, pid = embedded.url, embedded.pid
    bench = Bench(settings, url, pid, plan)
    try:
        models: list[ModelFigures] = []
        int8: list[Int8Figures] = []
        samples: dict[str, Result] = {}
        for infer_type in settings.types:
            spec, _ = resolve(infer_type, None, settings.model_dir)
            fp32 = bench.measure(infer_type, spec.name, full=True)
            models.append(fp32)
            sample = bench.sample_result()
            if sample is not None:
                samples[infer_type] = sample
            quantized = f"{spec.name}-int8"
            if settings.int8 and quantized in BUILTIN_MODELS:
                q = bench.measure(infer_type, quantized, full=False)
                models.append(q)
                dets = bench.agreement(infer_type, spec.name, quantized, plan.agreement_frames)
                # The CPU may run "FP32" in BF16 by default (AVX-512 BF16): also time true f32.
                f32 = bench.model_only(spec.path(settings.model_dir), fp32.batch, "f32")
                f32_worker = bench.worker_fps(infer_type, spec.name, "f32", f32)
                int8.append(Int8Figures(infer_type, spec.name, quantized,
                                        q.model_only_fps / fp32.model_only_fps,
                                        q.model_only_fps / f32,
                                        q.worker_fps / fp32.worker_fps,
                                        q.worker_fps / f32_worker, *dets))
        # People are what most streams look for; another type's result when not measured.
        sample = samples.get("people") or next(iter(samples.values()), None)
        storage = bench.storage(sample) if sample is not None else []
    finally:
        bench.close()
        if embedded is not None:
            embedded.close()
    log.info("ei track: tracker messages per CPU second")
    tracking = measure_tracker(0.5 if settings.quick else 3.0)
    results = checks(models, int8, tracking)
    report: dict[str, Any] = {
        "quick": settings.quick,
        "seconds": round(time.monotonic() - started, 1),
        "machine": {"cpu": cpu_model(), "cores": os.cpu_count(), "device": settings.device,
                    "openvino": openvino_version(),
                    "python": platform.python_version()},
        "models": [{**asdict(f), "bound": f.bound, "shared_limit_fps": f.shared_limit_fps}
                   for f in models],
        "int8": [{**asdict(q), "agreement": q.agreement} for q in int8],
        "tracker": [asdict(t) for t in tracking],
        "storage": [{**asdict(f), "redis": f.redis, "ratio": f.ratio} for f in storage],
        "checks": [{**asdict(c), "ok": c.ok} for c in results],
    }
    sys.stdout.write(render(report, models, int8, results, tracking, storage) + "\n")
    log.info("bench finished in %.0f s", report["seconds"])
    if settings.json:
        Path(settings.json).write_text(json.dumps(report, indent=2) + "\n")
    return 0


def main(argv: list[str]) -> int:
    settings = parse_settings(BenchSettings, argv, prog="ei bench")
    setup_logging(settings.log_level)
    if not settings.model_dir.is_dir():
        raise ConfigError(f"EI_MODEL_DIR={settings.model_dir} is not a directory; "
                          "run tools/download-models.sh")
    if settings.scale:
        from .scale import run_scale

        return run_scale(settings)
    return run(settings)
