"""A stream fed to three types in a real headless Chromium: the websocket sends each frame's
JPEG once (with its first result) and the other types' results as text, and the tile still
draws every type's boxes on the picture. Real gateway and websocket services, synthetic
output of vtest.avi frames published straight to Redis (no workers)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from elastic_inference.bench.frames import video_jpegs
from elastic_inference.engine.annotate import label_colour
from tests.e2e.browser import Browser
from tests.e2e.live import (
    FRAME_SIZE,
    TILES_JS,
    Publisher,
    assert_no_page_problems,
    colour_pixels_js,
    flushed,
    live_services,
    publishing,
    tiles_by_stream,
)
from tests.redis_server import RedisServer

pytestmark = pytest.mark.e2e

STREAM = "three-types"
TYPES = ("people", "face", "car")


@pytest.fixture(scope="module")
def three_types(redis_server: RedisServer, sample_dir: Path,
                browser: Browser) -> Iterator[tuple[str, Publisher]]:
    redis_url = flushed(redis_server)
    url, _, websocket, gateway = live_services(redis_url)
    publisher = Publisher(redis_url, [STREAM], 8.0,
                          video_jpegs(sample_dir / "vtest.avi", 10, FRAME_SIZE), types=TYPES)
    with publishing(url, publisher, browser, lambda: [gateway, websocket]):
        yield url, publisher


def test_a_stream_fed_to_three_types_shows_every_types_boxes(
        three_types: tuple[str, Publisher], browser: Browser) -> None:
    url, publisher = three_types
    browser.ws_frames()  # only what this page receives
    browser.goto(url)
    browser.wait(f"{TILES_JS}.some((t) => t.stream === '{STREAM}' && t.painted >= 3)", 30,
                 "the tile to paint frames")
    # Two "Person" boxes of people, one box each of face and car, drawn on the picture.
    browser.wait(f"+document.querySelector('.tile[data-stream=\"{STREAM}\"]')"
                 ".dataset.detections === 4", 20, "every type's detections on the tile")
    for label in ("Person", "face", "car"):
        b, g, r = label_colour(label)
        assert browser.wait(f"{colour_pixels_js(STREAM, (r, g, b))} > 150", 20,
                            f"{label}-coloured box pixels on the canvas")
    # A frame counts once, not once per type: no more frames than seqs published.
    tile = tiles_by_stream(browser)[STREAM]
    assert 3 <= tile["frames"] <= publisher.published, (tile, publisher.published)
    # Off the wire, in the browser: each frame's JPEG once, every type's result for it, and
    # all of it at most 1.1x the JPEG.
    by_seq: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for message in browser.ws_frames():
        if message["stream"] == STREAM:
            by_seq[message["seq"]].append(message)
    jpegs = {seq: [m for m in got if m["binary"]] for seq, got in by_seq.items()}
    assert jpegs and all(len(j) <= 1 for j in jpegs.values()), jpegs
    whole = [seq for seq, got in by_seq.items()
             if jpegs[seq] and {m["type"] for m in got} == set(TYPES)]
    assert len(whole) >= 3, by_seq
    for seq in whole:
        size = sum(m["bytes"] for m in by_seq[seq])
        assert size <= 1.1 * jpegs[seq][0]["jpeg"], (seq, size, by_seq[seq])
    assert_no_page_problems(browser)
