"""The dashboard SPA in a real headless Chromium against real services.

Part 1 runs ``ei up`` (sample streams, real workers): tiles per stream, live pixels, boxes on
the people stream, a stream that stops loses its tile, the detail view's chart, phone width.
Part 2 runs the gateway and websocket services for real, fed by synthetic-but-real output (12
streams at 15 fps of vtest.avi JPEGs and real Result objects published straight to Redis, so
no workers are needed): the browser must keep up, and must reconnect after losing the socket.
Screenshots and the measured figures go to test-artifacts/ (doc/dashboard.md quotes them).
"""

from __future__ import annotations

import json
import os
import signal
import statistics
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from elastic_inference.bench.frames import video_jpegs
from elastic_inference.engine.annotate import label_colour
from tests.e2e.browser import ARTIFACTS, SPA, Browser
from tests.e2e.live import (
    FRAME_SIZE,
    PIXELS_JS,
    TILES_JS,
    Publisher,
    assert_no_page_problems,
    colour_pixels_js,
    flushed,
    live_services,
    publishing,
    tile_ids,
    tiles_by_stream,
    websocket_service,
)
from tests.processes import Service, get_json, wait_for
from tests.redis_server import RedisServer, free_port

pytestmark = pytest.mark.e2e

STREAMS = {"vtest-people", "vtest-car", "megamind-face"}

# ---------------------------------------------------------------------------------------------
# Part 1: `ei up` with the sample streams and real workers


@dataclass
class UpSystem:
    url: str  # the dashboard
    redis_url: str
    up: Service


@pytest.fixture(scope="class")
def system(redis_server: RedisServer, model_dir: Path, sample_dir: Path,
           browser: Browser) -> Iterator[UpSystem]:
    redis_url = flushed(redis_server)
    port = free_port()
    # Without authentication (tests/e2e/test_login.py covers the login): the page goes
    # straight to the wall, and the test reads the API without credentials.
    up = Service(["up", "--no-auth", "--redis-url", redis_url, "--port", str(port), "--ws-port",
                  str(free_port()), "--model-dir", str(model_dir), "--sample-dir",
                  str(sample_dir), "--spa-dir", str(SPA / "dist"), "--fps", "8"])
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: {s["id"] for s in get_json(f"{base}/api/streams")[1]["streams"]}
                 == STREAMS, 60, "/api/streams to list the three sample streams")
        yield UpSystem(f"{base}/", redis_url, up)
        assert up.alive(), up.output()[-3000:]
    finally:
        browser.leave()
        code = up.stop(timeout=30, sig=signal.SIGINT)
    assert code == 0, up.output()[-3000:]


class TestWithUp:
    """One `ei up` for these tests (class scope: it is gone before the load test)."""

    def test_wall_shows_one_live_tile_per_stream_with_boxes(
            self, system: UpSystem, browser: Browser) -> None:
        browser.goto(system.url)
        wait_for(lambda: tile_ids(browser) == STREAMS, 20, "a tile per stream")
        # Workers compile their models first: wait for every tile to paint frames.
        browser.wait(f"{TILES_JS}.every((t) => t.painted >= 3)", 60, "every tile to paint frames")

        before = browser.eval(PIXELS_JS)
        wait_for(lambda: all(before[s] != browser.eval(PIXELS_JS)[s] for s in STREAMS), 10,
                 "every tile to paint a new frame")

        # The people stream's boxes: its tile says so, and the canvas has pixels of the
        # "person" colour (the colour the gateway's snapshots use too: engine/annotate.py).
        b, g, r = label_colour("person")
        browser.wait("+document.querySelector('.tile[data-stream=\"vtest-people\"]')"
                     ".dataset.detections > 0", 20, "detections on the vtest-people tile")
        pixels = browser.wait(f"{colour_pixels_js('vtest-people', (r, g, b))} > 150", 20,
                              "person-coloured box pixels on the vtest-people canvas")
        assert pixels
        # The same colour is (nearly) absent from the car stream's picture of the same video.
        car = browser.eval(colour_pixels_js("vtest-car", (r, g, b)))
        assert car < 150, car

        # The system panel lists every type with its workers.
        browser.wait("document.querySelectorAll('.system tbody tr').length === 3", 15,
                     "the system panel's rows")
        rows = browser.eval("""[...document.querySelectorAll('.system tbody tr')].map((tr) =>
            [tr.dataset.type, ...[...tr.cells].map((c) => c.textContent.trim())])""")
        assert {row[0] for row in rows} == {"people", "car", "face"}, rows
        browser.screenshot("dashboard-wall.png")
        assert_no_page_problems(browser)


    def test_a_stream_appears_and_its_tile_goes_when_it_stops(
            self, system: UpSystem, browser: Browser, sample_dir: Path) -> None:
        browser.goto(system.url)
        extra = Service(["stream", "--redis-url", system.redis_url, "--source",
                         str(sample_dir / "vtest.avi"), "--stream-id", "extra-people", "--types",
                         "people", "--fps", "5"])
        try:
            browser.wait("!!document.querySelector('.tile[data-stream=\"extra-people\"]')", 20,
                         "a tile for the new stream, without a reload")
            browser.wait("+document.querySelector('.tile[data-stream=\"extra-people\"]')"
                         ".dataset.painted > 0", 30, "the new stream's frames on its tile")
            browser.screenshot("dashboard-stream-added.png")
        finally:
            code = extra.stop(timeout=20)
        assert code == 0, extra.output()[-2000:]
        stopped = time.monotonic()
        # Within the registry's TTL (5 s) plus a stream-list refresh.
        browser.wait("!document.querySelector('.tile[data-stream=\"extra-people\"]')", 15,
                     "the stopped stream's tile to go")
        assert time.monotonic() - stopped < 15
        assert tile_ids(browser) == STREAMS
        assert_no_page_problems(browser)


    def test_detail_view_shows_live_view_detections_and_chart(
            self, system: UpSystem, browser: Browser) -> None:
        browser.goto(system.url)
        browser.wait("!!document.querySelector('.tile[data-stream=\"vtest-people\"] h3 a')", 20,
                     "the vtest-people tile")
        browser.click(".tile[data-stream='vtest-people'] h3 a")
        assert browser.eval("location.hash") == "#/streams/vtest-people"
        browser.wait("!!document.querySelector('.detail[data-stream=\"vtest-people\"]')", 10,
                     "the detail view")
        # The large view paints, and the detections on it are listed.
        browser.wait("(() => { const c = document.querySelector('.detail canvas');"
                     " return c.width > 300 && c.getContext('2d').getImageData(0, 0, c.width,"
                     " c.height).data.some((v, i) => i % 4 !== 3 && v > 0); })()", 20,
                     "a painted frame in the detail view")
        browser.wait("+(document.querySelector('.detections')?.dataset.count ?? 0) > 0", 20,
                     "detections listed")
        # The chart has points of the person series (history of the last minutes).
        browser.wait("+(document.querySelector('.chart-box')?.dataset.points ?? 0) > 0", 20,
                     "a non-empty chart")
        series = browser.eval("[...document.querySelectorAll('.chart .series')]"
                              ".map((p) => p.getAttribute('d'))")
        assert series and all(d.startswith("M") for d in series), series
        assert "person" in browser.eval("document.querySelector('.legend').textContent")
        href = browser.eval("[...document.querySelectorAll('.links a')]"
                            ".find((a) => a.textContent.includes('MJPEG')).getAttribute('href')")
        assert href == "/api/streams/vtest-people/mjpeg"
        with urllib.request.urlopen(system.url.rstrip("/") + href, timeout=10) as resp:
            assert resp.headers["Content-Type"].startswith("multipart/x-mixed-replace")
            assert b"\xff\xd8" in resp.read(64 * 1024)
        browser.screenshot("dashboard-detail.png", full_page=True)

        browser.click(".back a")
        browser.wait(f"document.querySelectorAll('.tile').length === {len(STREAMS)}", 10,
                     "the wall again")
        assert_no_page_problems(browser)


    def test_wall_fits_a_phone(self, system: UpSystem, browser: Browser) -> None:
        browser.viewport(390, 844)
        try:
            browser.goto(system.url)
            browser.wait(f"{TILES_JS}.filter((t) => t.painted > 0).length === {len(STREAMS)}", 30,
                         "painted tiles at phone width")
            # One column, nothing wider than the screen (the system table scrolls in its box).
            assert browser.eval("document.documentElement.scrollWidth") <= 390
            lefts = browser.eval("[...document.querySelectorAll('.tile')]"
                                 ".map((t) => Math.round(t.getBoundingClientRect().left))")
            assert len(set(lefts)) == 1, lefts
            browser.screenshot("dashboard-phone.png", full_page=True)
        finally:
            browser.viewport(1280, 900)
        assert_no_page_problems(browser)


# ---------------------------------------------------------------------------------------------
# Part 2: 12 synthetic streams at 15 fps through the real gateway and websocket services

N_STREAMS = 12
FPS = 15.0
MEASURE_S = 10.0
# Bounds, explained in doc/dashboard.md. On 2 cores Chromium is CPU-bound here: decoding a
# 768x576 JPEG costs about 5 ms, so the page paints about 100 of the 180 frames/s offered.
# The rest are skipped, by the websocket server (newest wins, when the page reads too slowly)
# or by the page (a frame that arrives while its tile's previous one is still decoding). What
# must hold is that the page stays live and fair:
# - every tile paints at least half as often as the median tile, and at least once a second:
#   no tile is starved by the others (a ratio, so it holds on a slower or busier CPU; the lowest
#   tile measured 7.5-9.7 fps on a quiet machine, 4.4 with six other suites on its two cores);
FAIR_SHARE = 0.5
MIN_TILE_FPS = 1.0
# - at least half of what arrives is painted (measured 0.86-0.99; with a faster main thread
#   more frames arrive and more are dropped at decode, never queued);
PAINTED_RATIO_BOUND = 0.5
# - a frame is on screen soon after it arrives: 500 ms at the 95th percentile, under eight
#   frame intervals at 15 fps, so nothing queues (measured 100-180 ms on a quiet machine,
#   290-340 ms with six other suites on the same two cores).
P95_BOUND_MS = 500.0
# - what is painted is fresh: the median frame is on screen within 1.5 s of its capture
#   (measured 0.33-0.99 s). The live hops cap their socket buffers (core.runtime); without
#   that, megabytes of frames waited in loopback buffers and this was 1-3.3 s.
LATENCY_BOUND_MS = 1500.0


@dataclass
class SyntheticSystem:
    url: str
    ws_port: int
    redis_url: str
    websocket: Service
    gateway: Service


@pytest.fixture(scope="class")
def synthetic(redis_server: RedisServer, sample_dir: Path,
              browser: Browser) -> Iterator[SyntheticSystem]:
    redis_url = flushed(redis_server)
    url, ws_port, websocket, gateway = live_services(redis_url)
    system = SyntheticSystem(url, ws_port, redis_url, websocket, gateway)
    publisher = Publisher(redis_url, [f"synthetic-{i:02d}" for i in range(N_STREAMS)], FPS,
                          video_jpegs(sample_dir / "vtest.avi", 30, FRAME_SIZE))
    # Through the system: the test restarts the websocket service and replaces it there.
    with publishing(url, publisher, browser, lambda: [system.gateway, system.websocket]):
        yield system


class TestSyntheticLoad:
    """The gateway and websocket services with 12 synthetic streams at 15 fps."""

    def test_wall_keeps_up_with_12_streams_at_15_fps(
            self, synthetic: SyntheticSystem, browser: Browser) -> None:
        browser.goto(synthetic.url)
        browser.wait(f"{TILES_JS}.filter((t) => t.painted > 0).length === {N_STREAMS}", 30,
                     f"{N_STREAMS} painting tiles")
        time.sleep(3.0)  # warm-up: decoders, layout, JIT
        t0, first = time.monotonic(), tiles_by_stream(browser)
        time.sleep(MEASURE_S)
        t1, last = time.monotonic(), tiles_by_stream(browser)
        elapsed = t1 - t0

        per_tile = {}
        for stream, end in last.items():
            start = first[stream]
            arrived = end["frames"] - start["frames"]
            painted = end["painted"] - start["painted"]
            per_tile[stream] = {
                "arrived_fps": round(arrived / elapsed, 2),
                "painted_fps": round(painted / elapsed, 2),
                "painted_ratio": round(painted / arrived, 3) if arrived else 0.0,
                "p50_ms": end["p50"],
                "p95_ms": end["p95"],
                "drops": end["drops"] - start["drops"],
            }
        # Browser clock minus capture time: not asserted (see doc/dashboard.md: under overload
        # it measures the socket buffers between the websocket server and the page).
        latencies = [1000 * t["latency"] for t in last.values() if t["latency"] is not None]
        p95s = [t["p95_ms"] for t in per_tile.values() if t["p95_ms"] is not None]
        p50s = [t["p50_ms"] for t in per_tile.values() if t["p50_ms"] is not None]
        arrived_total = sum(last[s]["frames"] - first[s]["frames"] for s in last)
        painted_total = sum(last[s]["painted"] - first[s]["painted"] for s in last)
        figures = {
            "streams": N_STREAMS,
            "published_fps_per_stream": FPS,
            "frame_size": list(FRAME_SIZE),
            "window_s": round(elapsed, 2),
            "browser": browser.version,
            "cpus": os.cpu_count(),
            "arrived_fps_total": round(arrived_total / elapsed, 1),
            "arrived_ratio": round(arrived_total / (N_STREAMS * FPS * elapsed), 3),
            "painted_fps_total": round(painted_total / elapsed, 1),
            "painted_ratio": round(painted_total / arrived_total, 3) if arrived_total else 0.0,
            "min_tile_painted_ratio": min(t["painted_ratio"] for t in per_tile.values()),
            "min_tile_arrived_fps": min(t["arrived_fps"] for t in per_tile.values()),
            "min_tile_painted_fps": min(t["painted_fps"] for t in per_tile.values()),
            "frame_to_paint_ms": {
                "median_of_tile_p50": round(statistics.median(p50s), 1) if p50s else None,
                "median_of_tile_p95": round(statistics.median(p95s), 1) if p95s else None,
                "worst_tile_p95": round(max(p95s), 1) if p95s else None,
            },
            "end_to_end_latency_ms": {
                "median": round(statistics.median(latencies)) if latencies else None,
                "max": round(max(latencies)) if latencies else None,
            },
            "bounds": {"p95_ms": P95_BOUND_MS, "painted_ratio": PAINTED_RATIO_BOUND,
                       "tile_share_of_median": FAIR_SHARE, "tile_fps": MIN_TILE_FPS,
                       "latency_median_ms": LATENCY_BOUND_MS},
            "tiles": per_tile,
        }
        ARTIFACTS.mkdir(exist_ok=True)
        (ARTIFACTS / "dashboard-responsiveness.json").write_text(json.dumps(figures, indent=2))
        browser.screenshot("dashboard-12-streams.png")

        assert len(per_tile) == N_STREAMS
        assert len(p95s) == N_STREAMS, figures
        median_tile = statistics.median(t["painted_fps"] for t in per_tile.values())
        assert all(t["painted_fps"] >= max(MIN_TILE_FPS, FAIR_SHARE * median_tile)
                   for t in per_tile.values()), figures
        assert figures["painted_ratio"] >= PAINTED_RATIO_BOUND, figures
        assert max(p95s) <= P95_BOUND_MS, figures
        assert latencies and statistics.median(latencies) <= LATENCY_BOUND_MS, figures
        assert_no_page_problems(browser)

    def test_lost_connection_shows_a_banner_and_reconnects(
            self, synthetic: SyntheticSystem, browser: Browser) -> None:
        banner = "!!document.querySelector('[data-testid=\"connection-banner\"]')"
        browser.goto(synthetic.url)
        browser.wait(f"{TILES_JS}.filter((t) => t.painted > 0).length === {N_STREAMS}", 30,
                     "painting tiles")
        assert not browser.eval(banner)
        assert synthetic.websocket.stop(timeout=20) == 0
        browser.wait(banner, 10, "the connection-lost banner")
        text = browser.eval("document.querySelector('[data-testid=\"connection-banner\"]')"
                            ".textContent")
        assert "Live connection lost" in text, text
        browser.screenshot("dashboard-connection-lost.png")
        frames = browser.eval(f"{TILES_JS}.reduce((n, t) => n + t.frames, 0)")

        # The same port again: the page reconnects by itself (backoff), no reload.
        synthetic.websocket = websocket_service(synthetic.redis_url, synthetic.ws_port)
        browser.wait(f"!{banner}", 30, "the banner to go after the websocket service is back")
        browser.wait(f"{TILES_JS}.reduce((n, t) => n + t.frames, 0) > {frames + N_STREAMS * 5}",
                     15, "frames again after reconnecting")
        # Errors the lost connection itself logs (failed websocket handshakes) are expected.
        problems = [p for p in browser.problems() if "WebSocket" not in p]
        assert not problems, problems
