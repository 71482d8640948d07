"""The bench's arithmetic and report, on made-up figures (no model, no Redis)."""

from __future__ import annotations

from pathlib import Path

import pytest

from elastic_inference.bench.frames import sample_video
from elastic_inference.bench.probes import (
    MAIN_THREAD,
    UNNAMED_THREADS,
    cpu_by_name,
    percentile,
    proc_sample,
    thread_cpu,
)
from elastic_inference.bench.report import Int8Figures, ModelFigures, checks, render
from elastic_inference.bench.storage import StorageFigure
from elastic_inference.bench.tracking import SCENARIOS, TrackerFigure, measure_tracker, scene
from elastic_inference.core.analytics.speed import replay
from elastic_inference.core.errors import ConfigError
from elastic_inference.core.runtime import ServiceRuntime


def figures(model: str, model_fps: float, decode_fps: float, worker_fps: float,
            baseline_fps: float = 0.0) -> ModelFigures:
    f = ModelFigures("people", model, "300x300", 2, model_only_fps=model_fps,
                     detector_only_fps=model_fps * 0.9, decode_only_fps=decode_fps,
                     worker_fps=worker_fps, baseline_fps=baseline_fps, worker_rss_mb=200.0,
                     cpu_ms_per_frame={"worker": 10.0, "redis": 0.2, "decode_alone": 2.0,
                                       "inference_alone": 7.0, "rest": 1.0})
    if baseline_fps:
        f.worker_fps_small = worker_fps * 1.2
        f.density_streams = 5
        f.latency_half = {"offered_fps": worker_fps / 2, "p50_ms": 30.0, "p99_ms": 60.0}
        f.latency_overload = {"offered_fps": worker_fps * 2, "p50_ms": 200.0, "p99_ms": 1200.0,
                              "drops": 100.0, "max_queue": 16.0}
    return f


def test_percentile_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == 50.0
    assert percentile(values, 99) == 99.0
    assert percentile(values, 100) == 100.0
    assert percentile([], 50) == 0.0


def test_the_limit_is_whichever_is_slower_and_both_share_the_cores() -> None:
    ssd = figures("ssd", model_fps=100, decode_fps=400, worker_fps=70, baseline_fps=30)
    face = figures("face", model_fps=1600, decode_fps=1000, worker_fps=500, baseline_fps=100)
    assert ssd.bound == "model" and face.bound == "decode"
    assert ssd.shared_limit_fps == pytest.approx(80.0)


def test_checks_follow_the_bound_and_flag_misses() -> None:
    ssd = figures("ssd", model_fps=100, decode_fps=400, worker_fps=70, baseline_fps=30)
    face = figures("face", model_fps=1600, decode_fps=1000, worker_fps=800, baseline_fps=200)
    int8 = Int8Figures("people", "ssd", "ssd-int8", model_only_speedup=2.0,
                       model_only_speedup_vs_f32=2.5, worker_speedup=1.1,
                       worker_speedup_vs_f32=1.6,
                       fp32_detections=100, int8_detections=98, matched=96)
    by_name = {c.what: c for c in checks([ssd, face], [int8])}
    # ssd: a heavy model, shared limit 80 fps; 70 / 80 = 0.875 >= 0.85
    assert by_name["ssd: worker / shared limit"].value == pytest.approx(0.875)
    assert by_name["ssd: worker / shared limit"].ok
    assert by_name["ssd: worker / original design"].ok  # 2.33 >= 2
    # face: a light model, shared limit 1600*1000/2600 = 615 fps (> 500); 800 / 615 >= 0.75
    assert by_name["face: worker / shared limit"].target == 0.75
    assert by_name["face: worker / original design"].ok  # 4.0 >= 3
    assert not by_name["ssd: p99 age at 2x load (s)"].ok  # 1.2 s > max age
    assert by_name["ssd-int8: FP32 detections matched"].ok
    assert not any("speed-up" in c.what for c in by_name.values())  # reported, not targeted
    slow = figures("ssd", model_fps=100, decode_fps=400, worker_fps=60, baseline_fps=20)
    assert not {c.what: c for c in checks([slow], [])}["ssd: worker / shared limit"].ok
    # An INT8 row (no baseline measured) brings no design checks of its own.
    assert not any(c.what.startswith("ssd-int8: worker /") for c in
                   checks([figures("ssd-int8", 200, 400, 150)], []))


def test_render_shows_every_section_and_the_misses() -> None:
    ssd = figures("ssd", model_fps=100, decode_fps=400, worker_fps=70, baseline_fps=30)
    q = figures("ssd-int8", 200, 400, 150)
    int8 = Int8Figures("people", "ssd", "ssd-int8", 2.0, 2.5, 2.1, 2.4, 100, 98, 96)
    report = {"quick": True, "machine": {"cpu": "Test CPU", "cores": 2, "openvino": "x",
                                         "device": "CPU"}}
    text = render(report, [ssd, q], [int8], checks([ssd, q], [int8]))
    for heading in ("THROUGHPUT", "LATENCY", "WHERE THE TIME GOES", "INT8 vs FP32", "TARGETS"):
        assert heading in text
    assert "MISSED" in text and "96.0%" in text and "Test CPU" in text


def test_render_shows_the_frame_storage_figures() -> None:
    ssd = figures("ssd", model_fps=100, decode_fps=400, worker_fps=70, baseline_fps=30)
    report = {"quick": False, "machine": {"cpu": "Test CPU", "cores": 2, "openvino": "x",
                                          "device": "CPU"}}
    one = StorageFigure(1, 60, 100_000.0, 100_100.0, 300.0, 1_000.0, 201_400.0, 100_500.0, 1.0)
    three = StorageFigure(3, 60, 100_000.0, 100_100.0, 800.0, 3_000.0, 604_000.0, 0.0, 0.0)
    assert one.redis == 101_400.0 and three.ratio == pytest.approx(1.039)
    text = render(report, [ssd], [], checks([ssd], []), storage=[one, three])
    assert "FRAME STORAGE" in text and "(60 1280x720 frames)" in text
    row = next(line for line in text.splitlines() if "101400" in line)
    assert "1.01" in row and "201400" in row and "2.01" in row and "100500" in row
    row = next(line for line in text.splitlines() if "103900" in line)
    assert "1.04" in row and "6.04" in row and row.rstrip().endswith("-")  # no websocket
    assert "FRAME STORAGE" not in render(report, [ssd], [], checks([ssd], []))


def test_a_batched_model_is_held_to_its_batched_limit_and_shows_the_single_one() -> None:
    face = figures("face", model_fps=4000, decode_fps=2400, worker_fps=950, baseline_fps=170)
    face.batch, face.model_only_fps_single = 8, 2400
    report = {"quick": True, "machine": {"cpu": "Test CPU", "cores": 2, "openvino": "x",
                                         "device": "CPU"}}
    # 950 / (1 / (1/4000 + 1/2400) = 1500) = 0.63, against 950 / 1200 = 0.79 at one frame
    (check,) = [c for c in checks([face], []) if c.what == "face: worker / shared limit"]
    assert check.value == pytest.approx(0.633, abs=1e-3) and not check.ok
    text = render(report, [face], [], [check])
    assert ("face: one frame per request the model runs 2400 frames/s, a shared limit of 1200 "
            "(the worker 0.79 of it); the targets use the batch of 8 it runs") in text


def test_missing_sample_video_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="download-samples"):
        sample_video(tmp_path, "face")


def test_proc_sample_reads_this_process() -> None:
    import os

    sample = proc_sample(os.getpid())
    assert sample is not None and sample.cpu_seconds > 0 and sample.peak_rss_mb > 10
    assert proc_sample(2**22 + 12345) is None


def test_thread_cpu_sums_threads_by_the_names_the_runtime_gives_them() -> None:
    """A thread started by the runtime shows under its name (cut to the kernel's 15 bytes);
    one that kept the process's name, as OpenVINO's do, under ``unnamed``."""
    import os
    import threading
    import time

    done = threading.Event()

    def burn() -> None:
        end = time.thread_time() + 0.2
        while time.thread_time() < end:
            pass
        done.wait(10)

    before = thread_cpu(os.getpid())
    runtime = ServiceRuntime("t")
    named = runtime.start_thread(burn, "bench-busy-thread-long-name")
    plain = threading.Thread(target=burn)
    plain.start()
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            cpu = cpu_by_name(before, thread_cpu(os.getpid()))
            if cpu.get("bench-busy-thre", 0) >= 0.1 and cpu.get(UNNAMED_THREADS, 0) >= 0.1:
                break
            time.sleep(0.05)
    finally:
        done.set()
        named.join(10)
        plain.join(10)
    assert cpu["bench-busy-thre"] >= 0.1, cpu
    assert cpu[UNNAMED_THREADS] >= 0.1 and cpu[MAIN_THREAD] >= 0, cpu
    assert thread_cpu(2**22 + 12345) == {}


def test_the_thread_window_ends_before_the_worker_ends_its_threads() -> None:
    """A worker at ``max_frames`` ends its decode threads after its last frame;
    /proc then forgets their CPU, so the breakdown stops at the last poll that saw them."""
    from elastic_inference.bench.harness import by_thread

    def poll(published: int, decode: float, main: float, alive: bool = True
             ) -> tuple[float, list[int], float, float, dict[str, tuple[str, float]]]:
        threads = {"1": ("main", main), **({"2": ("infer-decode", decode)} if alive else {})}
        return (0.0, [published], 0.0, 0.0, threads)

    window = [poll(100, 1.0, 0.5), poll(300, 1.4, 0.6), poll(500, 1.8, 0.7),
              poll(600, 0.0, 0.75, alive=False)]
    ms = by_thread(window, 0)
    assert ms == {"main": pytest.approx(0.5), "infer-decode": pytest.approx(2.0)}
    assert by_thread([poll(100, 1.0, 0.5), poll(200, 0.0, 0.6, alive=False)], 0) == {}


def test_render_lists_the_worker_threads() -> None:
    f = figures("ssd", model_fps=100, decode_fps=400, worker_fps=70)
    f.threads_ms_per_frame = {"unnamed": 7.1, "infer-decode": 2.2, "main": 0.55}
    text = render({"quick": True, "machine": {"cpu": "c", "cores": 2, "openvino": "x",
                                              "device": "CPU"}}, [f], [], checks([f], []))
    assert "ssd: by thread unnamed 7.10, infer-decode 2.20, main 0.55" in text


def test_tracker_rows_and_their_target() -> None:
    slow = [TrackerFigure(name, people, len(rules), 150.0) for name, people, rules in SCENARIOS]
    (check,) = [c for c in checks([], [], slow) if c.what.startswith("ei track")]
    assert check.target == 200 and not check.ok
    fast = [TrackerFigure(t.scenario, t.people, t.rules, 5000.0) for t in slow]
    assert all(c.ok for c in checks([], [], fast))
    report = {"quick": True, "machine": {"cpu": "Test CPU", "cores": 2, "openvino": "x",
                                         "device": "CPU"}}
    text = render(report, [], [], checks([], [], fast), fast)
    assert "TRACKER" in text and "5000" in text and "20 people, a line and a zone" in text


def test_tracker_scenes_cross_the_line_and_are_measured() -> None:
    _, _, rules = SCENARIOS[1]
    counter = replay(scene(4), rules)
    assert sum(counter.crossings.values()) >= 4  # the walkers do cross: tracking is exercised
    figures = measure_tracker(0.01)
    assert [f.scenario for f in figures] == [s[0] for s in SCENARIOS]
    assert all(f.rate > 0 for f in figures)
