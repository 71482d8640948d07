"""The stream detail's events list against the real events API: a real headless Chromium, the
real gateway and websocket services on a real redis-server, authentication on, a viewer.

The events are recorded as ``ei track`` records them (that service is not run here; this test
plays its part): ``EventStore.record`` with snapshots drawn by ``engine.annotate.
track_snapshot`` on vtest.avi frames, so the page reads what the gateway really answers
(doc/analytics.md, "Wire: tracks, counts and events"; doc/dashboard.md, "Events").
"""

from __future__ import annotations

import json
import secrets
import time
from pathlib import Path

import pytest
import redis

from elastic_inference.bench.frames import video_jpegs
from elastic_inference.core import keys
from elastic_inference.core.analytics.tracker import Track
from elastic_inference.core.auth import Role
from elastic_inference.core.authstore import AuthStore
from elastic_inference.core.eventstore import EventRecord, EventStore
from elastic_inference.engine.annotate import track_snapshot
from tests.credentials import SECRET_ENV
from tests.e2e.browser import Browser
from tests.e2e.test_analytics_dashboard import COUNTS, FRAME_SIZE, STREAM, running
from tests.e2e.test_login import log_in, page_problems
from tests.redis_server import RedisServer

pytestmark = pytest.mark.e2e

PASSWORD = secrets.token_urlsafe(12)
QUIET = "cam-quiet"  # a stream with no events at all
#: What each recorded event is, in turn: (kind, rule, direction) and what the list says.
KINDS = (("enter", "door", "", "entered door"), ("cross", "gate", "a->b", "crossed gate a->b"),
         ("leave", "door", "", "left door"), ("dwell", "door", "", "stayed too long in door"))
ITEMS = "[data-testid=events] li[data-event]"



class EventMaker:
    """Records events of ``STREAM`` one at a time (so ids grow), each with a snapshot of a
    vtest frame and its tracks drawn, as ``ei track``'s recording handler does."""

    def __init__(self, client: redis.Redis, jpegs: list[bytes]) -> None:
        self.store = EventStore(client)
        self.jpegs = jpegs
        self.n = 0

    def record(self, stream: str = STREAM) -> tuple[str, EventRecord]:
        kind, rule, direction, _ = KINDS[self.n % len(KINDS)]
        track_id = 100 + self.n
        box = (0.1 + 0.02 * (self.n % 20), 0.2, 0.3 + 0.02 * (self.n % 20), 0.7)
        tracks = [Track(track_id, "person", box, 0.9, 5, 5),
                  Track(7, "person", (0.6, 0.3, 0.8, 0.9), 0.8, 9, 9)]
        jpeg = track_snapshot(self.jpegs[self.n % len(self.jpegs)], tracks, track_id)
        event = EventRecord("", stream, "people", rule, kind, direction, track_id, "person",
                            1000 + self.n, time.time(), box)
        self.n += 1
        return self.store.record([(event, jpeg)])[0], event


def shown(browser: Browser) -> list[dict[str, str]]:
    """The list's items as the page shows them: id, kind and the text beside the picture."""
    items: list[dict[str, str]] = browser.eval(
        f"[...document.querySelectorAll('{ITEMS}')].map((li) => ({{id: li.dataset.event,"
        " kind: li.dataset.kind,"
        " text: li.lastElementChild.textContent.replace(/\\s+/g, ' ').trim()}))")
    return items


def ids_shown(browser: Browser) -> str:
    return (f"[...document.querySelectorAll('{ITEMS}')].map((li) => li.dataset.event)"
            ".join(' ')")


def wait_for_ids(browser: Browser, want: list[str], timeout: float, what: str) -> None:
    browser.wait(f"{ids_shown(browser)} === {json.dumps(' '.join(want))}", timeout, what)


def snapshots_loaded(browser: Browser, want: int, timeout: float) -> None:
    """Every image of the list scrolled into view (they are lazy) and decoded."""
    browser.wait(
        f"(() => {{ const imgs = [...document.querySelectorAll('{ITEMS} img')];"
        " imgs.forEach((i) => { if (!i.complete) i.scrollIntoView(); });"
        f" return imgs.length === {want} && imgs.every((i) => i.complete && i.naturalWidth > 0);"
        " })()", timeout, f"{want} snapshots loaded")


def test_a_viewer_pages_through_events_with_snapshots_and_sees_new_ones(
        redis_server: RedisServer, sample_dir: Path, browser: Browser,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """``COUNTS`` (what the publisher's tracks messages say) changes once, put back after."""
    with running(redis_server, sample_dir, browser, env=SECRET_ENV) as system:
        client = redis.Redis.from_url(system.redis_url)
        AuthStore(client).add_user("vera", Role.VIEWER, PASSWORD)
        maker = EventMaker(client, video_jpegs(sample_dir / "vtest.avi", 8, FRAME_SIZE))
        recorded = []
        for i in range(25):  # more than a page (20)
            recorded.append(maker.record())
            if i % 6 == 0:
                maker.record("cam-b")  # another stream's: never in this list
        ids = [event_id for event_id, _ in recorded]
        # The snapshot of the third newest is gone (it expired, or never was drawn).
        gone = ids[-3]
        client.delete(keys.event_snapshot(gone))

        browser.goto(f"{system.url}#/streams/{STREAM}")
        log_in(browser, "vera", PASSWORD, "viewer")
        browser.wait("!!document.querySelector('[data-testid=events-toggle] summary')", 15,
                     "the events section")
        browser.eval("performance.setResourceTimingBufferSize(100000)")
        opened = time.monotonic()
        browser.click("[data-testid=events-toggle] summary")

        # The newest page: 20 events newest first, with kind, rule, label and track id.
        newest = ids[::-1][:20]
        wait_for_ids(browser, newest, 15, "the newest 20 events")
        by_id = dict(recorded)
        for item in shown(browser):
            event = by_id[item["id"]]
            said = next(k[3] for k in KINDS if k[0] == event.kind)
            assert item["kind"] == event.kind, item
            assert item["text"].startswith(f"#{event.track_id} person {said}"), item
            assert item["text"].endswith("· people"), item
        # Their snapshots load, but the one that is gone: a placeholder, no broken image.
        snapshots_loaded(browser, 19, 20)
        placeholder = browser.eval(f"[...document.querySelectorAll('{ITEMS}')].filter((li) =>"
                                   " li.querySelector('[data-testid=no-snapshot]'))"
                                   ".map((li) => li.dataset.event)")
        assert placeholder == [gone], placeholder
        width = browser.eval("document.querySelector('[data-testid=events] li[data-event] img')"
                             ".naturalWidth")
        assert width == 640, width  # track_snapshot's width: the real JPEG, not a stand-in
        browser.screenshot("dashboard-events.png", full_page=True)

        # Older: the remaining 5, then nothing older; Newer: the newest page again.
        browser.click("[data-testid=older-events]")
        wait_for_ids(browser, ids[::-1][20:], 15, "the older events")
        snapshots_loaded(browser, 5, 20)
        assert browser.eval("document.querySelector('[data-testid=older-events]').disabled")
        browser.click("[data-testid=newer-events]")
        wait_for_ids(browser, newest, 15, "the newest events again")

        # Live: an event recorded now shows up on the open list without a reload (the counts
        # do not change yet: the 10 s timer brings it).
        new_id, _ = maker.record()
        wait_for_ids(browser, [new_id, *newest[:19]], 25, "the new event at the top")
        # New counts bring the next one at once: the timer, which has just fired, would take
        # 10 s (its next refresh is at least that far; the counts' is 1-3 s away).
        newer_id, _ = maker.record()
        monkeypatch.setitem(COUNTS, "lobby", {**COUNTS["lobby"], "enter": 10})
        wait_for_ids(browser, [newer_id, new_id, *newest[:18]], 7,
                     "the event the new counts announced")
        snapshots_loaded(browser, 19, 20)
        # Cheap: the newest page was asked on opening, on Newer, once for the new counts, and
        # then every 10 s (the timer): at most 3 and one per 5 s.
        asked = browser.eval(
            "performance.getEntriesByType('resource').filter((e) =>"
            f" e.name.includes('/api/events?stream={STREAM}&limit=20')"
            " && !e.name.includes('cursor')).length")
        elapsed = time.monotonic() - opened
        assert 4 <= asked <= 3 + elapsed / 5, (asked, elapsed)

        # A stream without events: "No events yet", not "does not serve events".
        browser.eval(f"location.hash = '#/streams/{QUIET}'")
        browser.wait("!!document.querySelector('[data-testid=events-toggle] summary')", 15,
                     "the quiet stream's events section")
        browser.click("[data-testid=events-toggle] summary")
        text = browser.wait("document.querySelector('[data-testid=no-events]')?.textContent",
                            15, "the quiet stream's empty list")
        assert text == "No events yet.", text
        assert "does not serve" not in browser.eval(
            "document.querySelector('[data-testid=events]').textContent")
        client.close()
        # No console error but Chromium's lines for 4xx answers (the gone snapshot's 404,
        # the 401 before logging in).
        problems = page_problems(browser)
        assert problems == [], problems
