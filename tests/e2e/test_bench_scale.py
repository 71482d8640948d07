"""``ei bench --scale`` with small numbers: every source live, every figure present and sane
(its speed is the bench's business, not a test's)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.processes import environment

pytestmark = [pytest.mark.e2e, pytest.mark.bench]

SOURCES, REPLICAS, CLIENTS, FPS = 8, 2, 3, 4.0


# A hang guard, not a speed check: about 30 s on a quiet machine (at 4 fps the warm-up that
# fills the live buffers of 32 frames takes 9 s).
@pytest.mark.timeout(300)
def test_scale_bench_small(model_dir: Path, sample_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "scale.json"
    done = subprocess.run(
        [sys.executable, "-m", "elastic_inference.cli", "bench", "--scale",
         "--scale-sources", str(SOURCES), "--scale-replicas", str(REPLICAS),
         "--scale-ws-clients", str(CLIENTS), "--scale-fps", str(FPS), "--scale-seconds", "8",
         "--json", str(out), "--model-dir", str(model_dir), "--sample-dir", str(sample_dir)],
        cwd=REPO, env=environment(), capture_output=True, text=True, timeout=280, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"{SOURCES} / {SOURCES}" in done.stdout, done.stdout
    r = json.loads(out.read_text())

    assert r["scale"]["model"] == "blazeface" and r["scale"]["sources"] == SOURCES
    src = r["sources"]
    assert src["registered"] == src["live"] == SOURCES, src
    assert src["replicas"] == REPLICAS, src  # the sources are spread over both replicas
    # Every source sends, and none faster than asked (pacing), whatever the machine's speed.
    assert 0 < src["fps_min"] <= src["fps_median"] <= src["fps_max"] <= FPS * 1.5, src
    frames = r["frames"]
    assert frames["sent_per_s"] > 0 and frames["pushed_per_s"] > 0, frames
    assert frames["processed_per_s"] > 0, frames
    assert set(frames["drops"]) == {"overflow", "stale", "invalid"}
    assert frames["drops"]["invalid"] == 0, frames

    redis = r["redis"]
    for key in ("cpu_ms_per_frame", "memory_per_source_kb", "used_memory_mb", "ops_per_frame",
                "in_bytes_per_frame", "out_bytes_per_frame", "out_stream_bytes",
                "frame_store_bytes", "results_bytes_per_entry"):
        assert redis[key] > 0, (key, redis)

    commands = r["redis_commands"]
    assert commands and all(c["calls_per_frame"] > 0 for c in commands.values()), commands

    for path in ("/api/streams", "/api/sources"):
        api = r["api"][path]
        assert api["requests"] > 0 and api["failed"] == 0, (path, api)
        assert 0 < api["p50_ms"] <= api["p99_ms"], (path, api)
        assert api["bytes"] > 0, (path, api)

    ws = r["websocket"]
    assert ws["clients"] == CLIENTS and ws["failed"] == [], ws
    assert ws["frames_per_s_min"] > 0 and ws["kbytes_per_s_median"] > 0, ws

    assert set(r["cpu"]) == {"stream-pool", "infer", "websocket", "gateway", "redis",
                             "bench clients"}
    for kind, cpu in r["cpu"].items():
        assert cpu["cores"] > 0 and cpu["ms_per_frame"] > 0, (kind, cpu)
    hd = r["hd_frame"]
    assert hd["encode_ms"] > 0 and hd["decode_ms"] > 0 and hd["jpeg_kb"] > 0, hd
    assert hd["mpeg4_decode_ms"] > 0, hd
    assert len(r["machine"]["load_before"]) == 3
