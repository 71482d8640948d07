"""``ei bench --quick``: every figure present and positive (its speed is the bench's business,
not a test's)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.processes import environment

pytestmark = [pytest.mark.e2e, pytest.mark.bench]

POSITIVE_PER_MODEL = ("model_only_fps", "detector_only_fps", "decode_only_fps", "worker_fps",
                      "shared_limit_fps", "worker_rss_mb")
POSITIVE_PER_FP32_MODEL = ("worker_fps_small", "baseline_fps", "density_streams")
LIVE_FIGURES = ("offered_fps", "pushed", "published", "p50_ms", "p99_ms", "max_queue")


# Hang guards, not speed checks: the quick bench takes about 90 s on a quiet machine, 170 s at
# load average 10 and more than 300 s at load average 20 (two cores shared with other suites).
@pytest.mark.timeout(960)
def test_quick_bench_reports_every_figure(model_dir: Path, sample_dir: Path,
                                          tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    env = environment()
    done = subprocess.run(
        [sys.executable, "-m", "elastic_inference.cli", "bench", "--quick", "--json", str(out),
         "--model-dir", str(model_dir), "--sample-dir", str(sample_dir)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=900, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(out.read_text())
    artifacts = REPO / "test-artifacts"
    artifacts.mkdir(exist_ok=True)
    (artifacts / "bench-quick.txt").write_text(done.stdout)

    models = {m["model"]: m for m in report["models"]}
    # The types' default models: people is NanoDet, which has no INT8 twin (doc/models.md).
    assert {"blazeface", "blazeface-int8", "nanodet-g-416"} <= set(models)
    for name, m in models.items():
        for key in POSITIVE_PER_MODEL:
            assert m[key] > 0, (name, key, m[key])
        assert m["worker_exit_code"] == 0, name
        # --quick measures one round: the row's figures are that round's own, its limits
        # the mean of those measured before and after the drain.
        assert m["rounds"] == [pytest.approx(m["worker_fps"] / m["shared_limit_fps"],
                                             abs=1e-3)], name
        assert len(m["drift"]) == 1 and 0.2 < m["drift"][0] < 5, (name, m["drift"])
        assert set(m["cpu_ms_per_frame"]) == {"worker", "redis", "decode_alone",
                                              "inference_alone", "rest"}
        assert m["cpu_ms_per_frame"]["worker"] > 0 and m["cpu_ms_per_frame"]["decode_alone"] > 0
        # The worker's CPU by thread: its own by name, OpenVINO's as "unnamed"; together what
        # the process used (each thread's CPU is counted in 10 ms ticks, hence the margin).
        threads = m["threads_ms_per_frame"]
        assert {"main", "infer-decode", "unnamed"} <= set(threads), threads
        assert threads["infer-decode"] > 0 and threads["unnamed"] > 0, threads
        assert sum(threads.values()) == pytest.approx(m["cpu_ms_per_frame"]["worker"],
                                                      rel=0.2), threads
    for name in ("blazeface", "nanodet-g-416"):
        m = models[name]
        for key in POSITIVE_PER_FP32_MODEL:
            assert m[key] > 0, (name, key, m[key])
        for phase in ("latency_half", "latency_overload"):
            for key in LIVE_FIGURES:
                assert m[phase][key] > 0, (name, phase, key, m[phase])
            assert m[phase]["p99_ms"] >= m[phase]["p50_ms"]
    (q,) = [q for q in report["int8"] if q["int8"] == "blazeface-int8"]
    assert q["model_only_speedup"] > 0 and q["worker_speedup"] > 0
    assert q["model_only_speedup_vs_f32"] > 0
    assert q["fp32_detections"] > 0 and 0 < q["agreement"] <= 1
    assert report["checks"] and all(isinstance(c["ok"], bool) for c in report["checks"])
    assert report["seconds"] > 0 and report["machine"]["cores"] >= 1
    # Frame storage (quick: no websocket viewer): the JPEG written once, whatever the types.
    one, three = report["storage"]
    assert (one["types"], three["types"]) == (1, 3)
    for s in (one, three):
        assert s["jpeg"] < s["frame_store"] < s["redis"] < s["before"], s
    assert three["before"] > 3 * three["jpeg"] > 2 * three["redis"]
    for heading in ("THROUGHPUT", "LATENCY", "WHERE THE TIME GOES", "INT8 vs FP32",
                    "FRAME STORAGE", "TARGETS"):
        assert heading in done.stdout
