"""Tracks, zones and lines and live counts in the dashboard: a real headless Chromium against
the real gateway and websocket services on a real redis-server.

``TracksPublisher`` publishes a stream's frames (vtest.avi JPEGs, real Result objects, as a
worker would) and, for each frame, an entry of ``ei:tracks:{stream}`` as the wire contract of
doc/analytics.md ("Wire: tracks, counts and events") spells it: it plays the part of
``ei track``, another service, so the page is tested against the contract itself. The events
list has its own file (test_events_dashboard.py).
"""

from __future__ import annotations

import contextlib
import json
import secrets
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis

from elastic_inference.bench.frames import video_jpegs
from elastic_inference.core import keys
from elastic_inference.core.analytics.rules import Rule
from elastic_inference.core.auth import Role
from elastic_inference.core.authstore import AuthStore
from elastic_inference.core.broker import OutputBroker
from elastic_inference.core.registry import StreamRegistry
from elastic_inference.core.result import Detection, Result
from elastic_inference.core.rulestore import RuleStore
from tests.credentials import SECRET_ENV
from tests.e2e.browser import Browser
from tests.e2e.live import assert_no_page_problems, flushed, live_services
from tests.e2e.test_login import log_in, log_out, page_problems, page_status
from tests.outputs import publish
from tests.processes import get_json, wait_for
from tests.redis_server import RedisServer

pytestmark = pytest.mark.e2e

STREAM = "cam-a"
FRAME_SIZE = (768, 576)
TRACK_IDS = (41, 42)
# What the counts of every tracks entry say: the line the test draws is the editor's first
# line, so it is named "line1".
COUNTS = {"line1": {"a->b": 7, "b->a": 3}, "lobby": {"occupancy": 2, "enter": 9, "leave": 7}}


class TracksPublisher(threading.Thread):
    """``STREAM`` registered and published at 5 fps with two people, and their tracks."""

    def __init__(self, redis_url: str, jpegs: list[bytes]) -> None:
        super().__init__(daemon=True)
        self.client = redis.Redis.from_url(redis_url)
        self.jpegs = jpegs
        self.stop = threading.Event()

    def boxes(self, seq: int) -> list[tuple[float, float, float, float]]:
        x = 0.1 + 0.5 * ((seq % 50) / 50)
        return [(x, 0.2, x + 0.12, 0.6), (0.8 - x, 0.3, 0.92 - x, 0.75)]

    def run(self) -> None:
        broker, registry = OutputBroker(self.client), StreamRegistry(self.client)
        info = {"types": ["people"], "source_kind": "synthetic", "source": "vtest.avi",
                "w": FRAME_SIZE[0], "h": FRAME_SIZE[1], "fps": 5.0, "state": "live"}
        seq = 0
        try:
            while not self.stop.is_set():
                now = time.time()
                registry.beat(STREAM, info)
                boxes = self.boxes(seq)
                result = Result(stream=STREAM, type="people", seq=seq, ts_capture=now - 0.05,
                                ts_done=now - 0.01, model="synthetic", device="CPU",
                                w=FRAME_SIZE[0], h=FRAME_SIZE[1],
                                detections=tuple(Detection("person", 0.9, b) for b in boxes))
                publish(broker, [(result, self.jpegs[seq % len(self.jpegs)])], now)
                tracks = {"v": 1, "stream": STREAM, "type": "people", "seq": seq,
                          "ts_capture": now - 0.05,
                          "frame": {"w": FRAME_SIZE[0], "h": FRAME_SIZE[1]}, "rules_version": 1,
                          "tracks": [{"id": i, "label": "person", "score": 0.9, "box": list(b),
                                      "age": seq} for i, b in zip(TRACK_IDS, boxes, strict=True)],
                          "counts": COUNTS}
                self.client.xadd(keys.tracks(STREAM), {"tracks": json.dumps(tracks)},
                                 maxlen=32, approximate=True)
                seq += 1
                self.stop.wait(0.2)
        finally:
            registry.remove(STREAM)
            self.client.close()


@dataclass
class System:
    url: str
    redis_url: str



@contextlib.contextmanager
def running(redis_server: RedisServer, sample_dir: Path, browser: Browser,
            env: dict[str, str] | None = None) -> Iterator[System]:
    """The gateway and websocket services (authentication on when ``env`` has a session
    secret) and the publisher, on a flushed Redis."""
    redis_url = flushed(redis_server)
    url, _, websocket, gateway = live_services(redis_url, env=env)
    publisher = TracksPublisher(redis_url, video_jpegs(sample_dir / "vtest.avi", 10, FRAME_SIZE))
    try:
        wait_for(lambda: get_json(f"{url}readyz")[0] == 200, 20, "the gateway")
        publisher.start()
        yield System(url, redis_url)
    finally:
        browser.leave()
        publisher.stop.set()
        if publisher.is_alive():
            publisher.join(timeout=5)
        codes = [s.stop(timeout=20) for s in (gateway, websocket)]
    assert codes == [0, 0], gateway.output()[-2000:] + websocket.output()[-2000:]


@pytest.fixture
def system(redis_server: RedisServer, sample_dir: Path, browser: Browser) -> Iterator[System]:
    """Without authentication: the page acts as admin."""
    with running(redis_server, sample_dir, browser) as system:
        yield system


def overlay_box(browser: Browser) -> dict[str, float]:
    """The picture's place in the viewport (scrolled to the top of it, so all of it shows)."""
    box: dict[str, float] = browser.eval(
        "(() => { const o = document.querySelector('[data-testid=rules-overlay]');"
        " window.scrollTo(0, window.scrollY + o.getBoundingClientRect().top - 10);"
        " const r = o.getBoundingClientRect();"
        " return {x: r.left, y: r.top, w: r.width, h: r.height, vh: window.innerHeight}; })()")
    assert box["y"] + box["h"] <= box["vh"], f"the picture does not fit the viewport: {box}"
    return box


def at(box: dict[str, float], fx: float, fy: float) -> tuple[float, float]:
    """Page pixels of the fraction (fx, fy) of the picture."""
    return box["x"] + fx * box["w"], box["y"] + fy * box["h"]


def stored(redis_url: str) -> tuple[int, list[dict[str, object]]]:
    client = redis.Redis.from_url(redis_url)
    try:
        rules = RuleStore(client).get(STREAM)
    finally:
        client.close()
    return rules.version, [r.to_json() for r in rules.rules]


def close_to(points: object, want: list[list[float]], tol: float = 0.01) -> bool:
    return (isinstance(points, list) and len(points) == len(want)
            and all(abs(p[0] - w[0]) <= tol and abs(p[1] - w[1]) <= tol
                    for p, w in zip(points, want, strict=True)))


def test_track_ids_rules_drawn_and_saved_and_live_counts(system: System,
                                                         browser: Browser) -> None:
    browser.goto(f"{system.url}#/streams/{STREAM}")
    # The canvas draws the tracks of its frames: "#41 person" and "#42 person".
    browser.wait("document.querySelector('.detail canvas')?.dataset.tracks === '41 42'", 20,
                 "the track ids on the live canvas")
    browser.wait("!!document.querySelector('[data-testid=add-line]')", 10, "the editor")
    assert browser.eval("document.querySelector('[data-testid=rules-panel]').dataset.version") \
        == "0"

    # A line, drawn top to bottom with two clicks, and saved.
    browser.click("[data-testid=add-line]")
    box = overlay_box(browser)
    assert box["w"] > 300 and box["h"] > 200, box
    browser.mouse(("click", *at(box, 0.5, 0.1)), ("click", *at(box, 0.5, 0.9)))
    browser.wait("document.querySelectorAll('[data-testid=rules-overlay] .rule.line').length"
                 " === 1", 5, "the line drawn")
    # Its direction arrow points to the screen's left: a->b of a line drawn downwards.
    arrow = browser.eval("(() => { const l = document.querySelector('.rule.line line.arrow');"
                         " return [+l.getAttribute('x1'), +l.getAttribute('x2')]; })()")
    assert arrow[1] < arrow[0], arrow
    browser.click("[data-testid=save-rules]")
    browser.wait("document.querySelector('[data-testid=rules-panel]').dataset.version === '1'",
                 10, "the rules saved")
    version, rules = stored(system.redis_url)
    assert version == 1 and len(rules) == 1, rules
    assert rules[0]["name"] == "line1" and rules[0]["kind"] == "line"
    assert close_to(rules[0]["points"], [[0.5, 0.1], [0.5, 0.9]]), rules

    # Drag its end b, label it, save again: Redis holds what the page shows. (Clicking Save
    # scrolled the page: where the picture is is asked again.)
    box = overlay_box(browser)
    browser.mouse(("move", *at(box, 0.5, 0.9)), ("down", 0, 0), ("move", *at(box, 0.3, 0.8)),
                  ("up", 0, 0))
    browser.fill("[data-testid=rule-labels]", "person")
    browser.eval("document.querySelector('[data-testid=rule-labels]')"
                 ".dispatchEvent(new Event('change'))")
    browser.click("[data-testid=save-rules]")
    browser.wait("document.querySelector('[data-testid=rules-panel]').dataset.version === '2'",
                 10, "the rules saved again")
    version, rules = stored(system.redis_url)
    assert close_to(rules[0]["points"], [[0.5, 0.1], [0.3, 0.8]]), rules
    assert rules[0]["labels"] == ["person"], rules

    # The live counts of the newest tracks message, one row per rule.
    browser.wait("document.querySelector('[data-testid=live-counts] tr[data-rule=line1]')"
                 "?.dataset.counts === JSON.stringify({'a->b': 7, 'b->a': 3})", 10,
                 "the line's live counts")
    lobby = browser.eval("document.querySelector('[data-testid=live-counts] "
                         "tr[data-rule=lobby]').textContent")
    assert "occupancy 2" in lobby and "enter 9" in lobby, lobby

    assert_no_page_problems(browser)

    # A self-intersecting zone (a bow tie) is refused by the gateway: its 400 is shown and
    # nothing is stored. (Chromium logs the refused request; nothing else may appear.)
    browser.click("[data-testid=add-zone]")
    box = overlay_box(browser)
    browser.mouse(*(("click", *at(box, fx, fy)) for fx, fy in
                    ((0.2, 0.2), (0.4, 0.4), (0.4, 0.2), (0.2, 0.4), (0.2, 0.2))))
    browser.wait("document.querySelectorAll('[data-testid=rules-overlay] .rule.zone').length"
                 " === 1", 5, "the zone closed on its first point")
    browser.click("[data-testid=save-rules]")
    message = browser.wait("document.querySelector('[data-testid=rules-error]')?.textContent",
                           10, "the gateway's 400 shown")
    assert "rule 1 (zone1)" in message and "simple polygon" in message, message
    assert stored(system.redis_url)[0] == 2
    browser.screenshot("dashboard-rules.png", full_page=True)
    assert browser.problems() == ["console: Failed to load resource: the server responded "
                                  "with a status of 400 (Bad Request)"]


PASSWORDS = {"vera": secrets.token_urlsafe(12), "otto": secrets.token_urlsafe(12)}


def test_a_viewer_sees_tracks_and_rules_read_only_an_operator_edits(
        redis_server: RedisServer, sample_dir: Path, browser: Browser) -> None:
    """With authentication on: the websocket carries tracks to a logged-in viewer, who gets the
    stored rules without any editing control (and the gateway refuses the viewer's PUT); an
    operator gets the editor."""
    with running(redis_server, sample_dir, browser, env=SECRET_ENV) as system:
        client = redis.Redis.from_url(system.redis_url)
        store = AuthStore(client)
        store.add_user("vera", Role.VIEWER, PASSWORDS["vera"])
        store.add_user("otto", Role.OPERATOR, PASSWORDS["otto"])
        RuleStore(client).put(STREAM, (Rule("gate", "line", ((0.5, 0.1), (0.5, 0.9))),))
        client.close()
        browser.goto(f"{system.url}#/streams/{STREAM}")
        log_in(browser, "vera", PASSWORDS["vera"], "viewer")
        browser.wait("document.querySelector('.detail canvas')?.dataset.tracks === '41 42'",
                     20, "the track ids on the viewer's canvas")
        browser.wait("document.querySelector('[data-testid=rules-panel]')?.dataset.version"
                     " === '1'", 10, "the stored rules")
        assert browser.eval("document.querySelector('.rule-list li[data-rule=gate]')"
                            ".textContent").startswith("gate")
        assert browser.eval("document.querySelectorAll('[data-testid=add-line], "
                            "[data-testid=add-zone], [data-testid=save-rules], "
                            "[data-testid=delete-rule], [data-testid=rule-name], "
                            ".rules-overlay .handle').length") == 0
        assert browser.eval("document.querySelectorAll('.rules-overlay .rule.line')"
                            ".length") == 1
        assert page_status(browser, "PUT", f"/api/streams/{STREAM}/rules") == 403
        log_out(browser)  # the login page keeps the address: back to this stream after login
        log_in(browser, "otto", PASSWORDS["otto"], "operator")
        browser.wait("!!document.querySelector('[data-testid=add-line]')", 10,
                     "the operator's editor")
        assert browser.eval("document.querySelectorAll('.rules-overlay .handle').length") == 2
        assert page_problems(browser) == []
