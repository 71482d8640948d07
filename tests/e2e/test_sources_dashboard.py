"""The dashboard's Sources view in a real headless Chromium against the real gateway (its
``/api/sources``, authentication on), the websocket service and a real stream pool replica
(``ei stream --pool``) reading what the page adds, on a real redis-server (doc/dashboard.md,
"Sources"; doc/sources.md).

An operator adds a camera through the form (vtest.avi from the media directory), sees the pool
take it (``live``), edits it, disables it and deletes it; a viewer sees the table and nothing to
change it with.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis

from elastic_inference.core import keys
from elastic_inference.core.auth import Role
from elastic_inference.core.authstore import AuthStore
from elastic_inference.core.frame import decode
from elastic_inference.core.sources import SourceConfig, SourceStore
from tests.credentials import SECRET_ENV
from tests.e2e.browser import Browser
from tests.e2e.live import flushed, live_services
from tests.e2e.test_login import log_in, log_out, page_problems
from tests.processes import Service, get_json, wait_for
from tests.redis_server import RedisServer

pytestmark = pytest.mark.e2e

USERS = {"olga": Role.OPERATOR, "victor": Role.VIEWER}
PASSWORDS = {name: secrets.token_urlsafe(12) for name in USERS}
CAMERA = "e2e-cam"
ROW = f"tr[data-source='{CAMERA}']"
ERROR = "document.querySelector('[data-testid=source-form-error]')?.textContent"


@dataclass
class SourcesSystem:
    url: str
    redis_url: str



@pytest.fixture(scope="module")
def system(redis_server: RedisServer, sample_dir: Path,
           browser: Browser) -> Iterator[SourcesSystem]:
    redis_url = flushed(redis_server)
    client = redis.Redis.from_url(redis_url)
    for name, role in USERS.items():
        AuthStore(client).add_user(name, role, PASSWORDS[name])
    client.close()
    url, _, websocket, gateway = live_services(redis_url, "--media-dir", str(sample_dir),
                                               env=SECRET_ENV)
    pool = Service(["stream", "--pool", "--redis-url", redis_url],
                   env={"EI_MEDIA_DIR": str(sample_dir)})
    services = [pool, gateway, websocket]
    try:
        wait_for(lambda: get_json(f"{url}readyz")[0] == 200, 20, "the gateway")
        yield SourcesSystem(url, redis_url)
        assert pool.alive(), pool.output()[-3000:]
    finally:
        browser.leave()
        codes = [s.stop(timeout=20) for s in services]
    assert codes == [0, 0, 0], "".join(s.output()[-2000:] for s in services)


def row(browser: Browser) -> dict[str, str] | None:
    """The camera's row as the page shows it: each cell's text by column, and its state."""
    value: dict[str, str] | None = browser.eval(
        f"(() => {{ const tr = document.querySelector(\"{ROW}\"); if (!tr) return null;"
        " const heads = [...document.querySelectorAll('[data-testid=sources] thead th')]"
        ".map((th) => th.textContent.trim() || 'actions');"
        " const cells = [...tr.children].map((c) => c.textContent.trim());"
        " return {...Object.fromEntries(heads.map((h, i) => [h, cells[i]])),"
        " badge: tr.querySelector('[data-testid=source-state]').className}; })()")
    return value


def page_write(browser: Browser, method: str, path: str, body: object) -> tuple[int, str]:
    """What the gateway answers the page's own session (cookie and CSRF token) for a write."""
    answer: list[Any] = browser.eval(
        "fetch('/api/me').then((r) => r.json()).then((me) =>"
        f" fetch({json.dumps(path)}, {{method: {json.dumps(method)}, headers:"
        " {'Content-Type': 'application/json', 'X-CSRF-Token': me.csrf},"
        f" body: {json.dumps(json.dumps(body))}}}))"
        ".then(async (r) => [r.status, (await r.json()).error || ''])")
    return int(answer[0]), str(answer[1])


def fill_camera(browser: Browser, source: str) -> None:
    browser.fill("#source-id", CAMERA)
    browser.fill("#source-source", source)
    # Only people: every other type's box unticked.
    browser.eval("document.querySelectorAll('[data-testid=source-form] input[name=types]')"
                 ".forEach((box) => {"
                 " if (box.checked !== (box.value === 'people')) box.click(); })")
    browser.fill("#source-fps", "2")
    browser.fill("#source-width", "320")


def test_an_operator_adds_edits_and_deletes_a_camera_and_a_viewer_only_reads(
        system: SourcesSystem, browser: Browser) -> None:
    client = redis.Redis.from_url(system.redis_url)
    store = SourceStore(client)
    browser.goto(f"{system.url}#/sources")
    log_in(browser, "olga", PASSWORDS["olga"], "operator")
    browser.wait("!!document.querySelector('[data-testid=no-sources]')", 15,
                 "the empty sources view")
    assert browser.eval("document.title").startswith("Sources")

    # The page's own checks: nothing is sent.
    fill_camera(browser, "vtest.avi")
    browser.fill("#source-fps", "61")
    browser.click("[data-testid=save-source]")
    assert "fps is a number from 0 to 60" in browser.wait(ERROR, 5, "the fps refused")
    browser.fill("#source-fps", "2")
    browser.fill("#source-width", "32")
    browser.click("[data-testid=save-source]")
    assert "max width is 0" in browser.wait(ERROR, 5, "the width refused")
    assert store.all() == []
    # The gateway's check (no such file in the media directory): its 400 shown as it is.
    fill_camera(browser, "no-such-file.avi")
    browser.click("[data-testid=save-source]")
    refused = browser.wait(f"{ERROR}?.includes('no-such-file.avi') && {ERROR}", 10,
                           "the gateway's refusal")
    assert refused == "source 'no-such-file.avi' is not a file in the media directory", refused
    assert store.all() == []

    # Added through the form: stored as asked, and the pool reads it (live) within 30 s.
    fill_camera(browser, "vtest.avi")
    browser.click("[data-testid=save-source]")
    browser.wait(f"!!document.querySelector(\"{ROW}\")", 10, "the camera in the table")
    stored = store.get(CAMERA)
    assert stored == SourceConfig(CAMERA, "vtest.avi", ("people",), 2.0, 320, True), stored
    browser.wait(f"document.querySelector(\"{ROW}\").dataset.state === 'live'", 30,
                 "the camera live")
    shown = row(browser)
    assert shown is not None
    assert {k: shown[k] for k in ("Id", "Source", "Kind", "Types", "Fps", "Enabled", "State")} \
        == {"Id": CAMERA, "Source": "vtest.avi", "Kind": "file", "Types": "people", "Fps": "2",
            "Enabled": "yes", "State": "live"}, shown
    assert "state-live" in shown["badge"], shown
    assert shown["Replica"] not in ("", "\u2013"), shown
    browser.screenshot("dashboard-sources.png", full_page=True)
    # What the form asked for reached the reader: people frames of the camera, 320 wide.
    frames = [decode(raw) for raw in client.lrange(keys.queue("people"), 0, -1)]
    assert frames and {(f.stream, f.w) for f in frames} == {(CAMERA, 320)}, \
        [(f.stream, f.w) for f in frames]

    # Edit: the form takes the row's fields; the new fps is stored, the rest kept.
    browser.click(f"{ROW} [data-testid=edit-source]")
    browser.wait("document.querySelector('[data-testid=source-form]').dataset.mode === 'edit'"
                 " && document.querySelector('#source-fps').value === '2'", 5, "the edit form")
    browser.fill("#source-fps", "3")
    browser.click("[data-testid=save-source]")
    wait_for(lambda: (s := store.get(CAMERA)) is not None and s.fps == 3.0, 10, "fps 3 stored")
    assert store.get(CAMERA) == SourceConfig(CAMERA, "vtest.avi", ("people",), 3.0, 320, True)

    # Disable: kept, unread.
    browser.click(f"{ROW} [data-testid=toggle-source]")
    browser.wait(f"document.querySelector(\"{ROW}\").dataset.state === 'disabled'", 15,
                 "the camera disabled")
    disabled = store.get(CAMERA)
    assert disabled is not None and disabled.enabled is False, disabled

    # Delete asks first; Cancel keeps it; Delete again and confirm: gone from page and store.
    browser.click(f"{ROW} [data-testid=delete-source]")
    browser.click(f"{ROW} [data-testid=cancel-delete]")
    assert browser.eval(f"!!document.querySelector(\"{ROW} [data-testid=delete-source]\")")
    browser.click(f"{ROW} [data-testid=delete-source]")
    browser.click(f"{ROW} [data-testid=confirm-delete]")
    browser.wait(f"!document.querySelector(\"{ROW}\")"
                 " && !!document.querySelector('[data-testid=no-sources]')", 10,
                 "the camera gone")
    assert store.get(CAMERA) is None
    log_out(browser)

    # A viewer: the table, and nothing to change it with (the gateway refuses it too).
    store.put(SourceConfig("lobby", "vtest.avi", ("people", "face"), 1.0, 320, False))
    log_in(browser, "victor", PASSWORDS["victor"], "viewer")
    browser.eval("location.hash = '#/sources'")
    browser.wait("!!document.querySelector(\"tr[data-source='lobby']\")", 15,
                 "the viewer's table")
    assert browser.eval("document.querySelector(\"tr[data-source='lobby']\").dataset.state") \
        == "disabled"
    assert not browser.eval("!!document.querySelector('[data-testid=nav-analysis]')")
    assert browser.eval("document.querySelectorAll('[data-testid=source-form], form, "
                        "[data-testid=edit-source], [data-testid=toggle-source], "
                        "[data-testid=delete-source]').length") == 0
    status, message = page_write(browser, "POST", "/api/sources",
                                 {"id": "x", "source": "vtest.avi", "types": ["people"]})
    assert status == 403 and "operator" in message, (status, message)
    assert [s.id for s in store.all()] == ["lobby"]
    log_out(browser)
    client.close()
    # No console error but Chromium's lines for 4xx answers (the 401 before logging in, the
    # gateway's 400 for the missing file, the viewer's 403).
    problems = page_problems(browser)
    assert problems == [], problems
