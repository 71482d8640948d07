"""The dashboard's login page, logout and role-aware UI in a real headless Chromium against the
real gateway (authentication on) and websocket services, fed by synthetic-but-real output as in
tests/e2e/live.py (real JPEGs, real Result objects, the real stream registry).

Users are created with the project's own AuthStore on the test's Redis, with passwords made
for this run. The rate-limit test runs last: failed logins may be limited per client address,
and every login here comes from 127.0.0.1.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis

from elastic_inference.bench.frames import video_jpegs
from elastic_inference.core.auth import Role
from elastic_inference.core.authstore import AuthStore
from tests.credentials import SECRET_ENV
from tests.e2e.browser import Browser
from tests.e2e.live import (
    FRAME_SIZE,
    TILES_JS,
    Publisher,
    flushed,
    live_services,
    publishing,
)
from tests.live_feed import metric
from tests.processes import Service, wait_for
from tests.redis_server import RedisServer

pytestmark = pytest.mark.e2e

STREAMS = ["login-a", "login-b"]
# name -> role; passwords are drawn per run (PASSWORDS).
USERS = {"olga": Role.OPERATOR, "victor": Role.VIEWER, "erin": Role.VIEWER,
         "mallory": Role.VIEWER}
PASSWORDS = {name: secrets.token_urlsafe(12) for name in USERS}

FORM = "!!document.querySelector('[data-testid=\"login-form\"]')"
USER = "document.querySelector('[data-testid=\"user\"]')"
DELETE = "[data-testid=\"delete-job\"]"


@dataclass
class LoginSystem:
    url: str
    redis_url: str
    websocket: Service
    gateway: Service


def page_problems(browser: Browser) -> list[str]:
    """Console errors but the browser's own line for each 4xx answer (401 before login and
    after logout, the failed logins and refusals these tests ask for)."""
    return [p for p in browser.problems() if "the server responded with a status of 4" not in p]


def log_in(browser: Browser, name: str, password: str, role: str) -> None:
    """Log in through the form; the header then shows ``name`` with ``role``."""
    browser.wait(FORM, 15, "the login form")
    browser.fill("#login-name", name)
    browser.fill("#login-password", password)
    browser.click("[data-testid='login-submit']")
    browser.wait(f"{USER}?.dataset.name === {json.dumps(name)}", 15, f"{name} in the header")
    assert browser.eval(f"{USER}.dataset.role") == role


def log_out(browser: Browser) -> None:
    browser.click("[data-testid='logout']")
    browser.wait(FORM, 10, "the login page after logging out")


def login_page(browser: Browser, system: LoginSystem) -> None:
    """The login page at the wall's address, whoever a test before left logged in."""
    browser.goto(system.url)
    browser.wait(f"{FORM} || !!{USER}", 15, "the page to know who it is")
    if browser.eval(f"!!{USER}"):
        log_out(browser)
    browser.eval("location.hash = '#/'")


def page_status(browser: Browser, method: str, path: str) -> int:
    """The status the gateway gives the page's own credentials (the cookie) for a request."""
    status: int = browser.eval(f"fetch({json.dumps(path)}, {{method: {json.dumps(method)}}})"
                               ".then((r) => r.status)")
    return status



@pytest.fixture(scope="module")
def system(redis_server: RedisServer, sample_dir: Path,
           browser: Browser) -> Iterator[LoginSystem]:
    redis_url = flushed(redis_server)
    client = redis.Redis.from_url(redis_url)
    store = AuthStore(client)
    for name, role in USERS.items():
        store.add_user(name, role, PASSWORDS[name])
    client.close()
    url, _, websocket, gateway = live_services(redis_url, "--media-dir", str(sample_dir),
                                               env=SECRET_ENV)
    system = LoginSystem(url, redis_url, websocket, gateway)
    publisher = Publisher(redis_url, STREAMS, 5.0,
                          video_jpegs(sample_dir / "vtest.avi", 10, FRAME_SIZE))
    with publishing(url, publisher, browser, lambda: [gateway, websocket]):
        yield system


def test_log_in_see_the_wall_and_log_out(system: LoginSystem, browser: Browser) -> None:
    login_page(browser, system)
    assert browser.eval("document.querySelectorAll('.tile').length") == 0
    fields = browser.eval("""[...document.querySelectorAll('[data-testid="login-form"] input')]
        .map((i) => [i.name, i.type, i.autocomplete])""")
    assert fields == [["username", "text", "username"],
                      ["password", "password", "current-password"]], fields
    assert browser.eval("document.activeElement.id") == "login-name"
    browser.screenshot("login-page.png")

    log_in(browser, "olga", PASSWORDS["olga"], "operator")
    browser.wait(f"{TILES_JS}.filter((t) => t.painted > 0).length === {len(STREAMS)}", 30,
                 "the wall of streams, painting")
    assert {t["stream"] for t in browser.eval(TILES_JS)} == set(STREAMS)
    wait_for(lambda: metric(system.websocket, "ei_ws_clients") == 1, 10,
             "the page's websocket at the websocket service")
    # The password is nowhere the page keeps things.
    kept = browser.eval("location.href + JSON.stringify(localStorage)"
                        " + JSON.stringify(sessionStorage) + document.cookie"
                        " + document.documentElement.outerHTML")
    assert PASSWORDS["olga"] not in kept
    browser.screenshot("login-wall.png")

    log_out(browser)
    notice = browser.eval("document.querySelector('[data-testid=\"login-notice\"]').textContent")
    assert "logged out" in notice, notice
    assert browser.eval("document.querySelectorAll('.tile').length") == 0
    # The socket is closed, and stays closed (no reconnecting while logged out).
    wait_for(lambda: metric(system.websocket, "ei_ws_clients") == 0, 10,
             "the websocket closed at logout")
    time.sleep(3.0)
    assert metric(system.websocket, "ei_ws_clients") == 0
    # The session ended on the server too, not only in the page.
    assert page_status(browser, "GET", "/api/me") == 401
    assert page_status(browser, "GET", "/api/streams") == 401
    problems = page_problems(browser)
    assert not problems, problems


def test_an_operator_sees_delete_controls_and_a_viewer_none(
        system: LoginSystem, browser: Browser) -> None:
    login_page(browser, system)
    log_in(browser, "olga", PASSWORDS["olga"], "operator")
    browser.click("[data-testid='nav-analysis']")
    browser.wait("!!document.querySelector('[data-testid=\"analysis-jobs\"]')", 10,
                 "the analysis jobs view")
    browser.fill("#job-source", "vtest.avi")
    browser.fill("#job-types", "people")
    browser.fill("#job-name", "login-e2e")
    browser.click("[data-testid='submit-job']")
    browser.wait(f"!!document.querySelector('tr[data-job] {DELETE}')", 15,
                 "the new job with its Delete")
    job = browser.eval("document.querySelector('tr[data-job]').dataset.job")
    # Delete asks first; Cancel keeps the job.
    browser.click(DELETE)
    browser.wait("!!document.querySelector('[data-testid=\"confirm-delete\"]')", 5,
                 "the confirm step")
    browser.screenshot("login-operator-jobs.png")
    browser.click("[data-testid='cancel-delete']")
    assert browser.eval(f"!!document.querySelector('tr[data-job=\"{job}\"]')")
    log_out(browser)

    log_in(browser, "victor", PASSWORDS["victor"], "viewer")
    browser.wait(f"{TILES_JS}.length === {len(STREAMS)}", 20, "the viewer's wall")
    assert not browser.eval("!!document.querySelector('[data-testid=\"nav-analysis\"]')")
    # Even at the jobs view's address: the wall, no jobs, no delete control.
    browser.eval("location.hash = '#/analysis'")
    time.sleep(1.0)
    assert browser.eval("!!document.querySelector('.wall')")
    assert not browser.eval("!!document.querySelector('[data-testid=\"analysis-jobs\"]')")
    assert not browser.eval(f"!!document.querySelector('{DELETE}')")
    assert page_status(browser, "GET", "/api/analysis") == 403  # and the gateway agrees
    browser.screenshot("login-viewer.png")
    log_out(browser)

    # The operator deletes the job, confirming.
    log_in(browser, "olga", PASSWORDS["olga"], "operator")
    browser.wait(f"!!document.querySelector('tr[data-job=\"{job}\"] {DELETE}')", 15,
                 "the job again, for the operator")
    browser.click(f"tr[data-job='{job}'] {DELETE}")
    browser.click("[data-testid='confirm-delete']")
    browser.wait(f"!document.querySelector('tr[data-job=\"{job}\"]')", 10, "the job deleted")
    assert page_status(browser, "GET", f"/api/analysis/{job}") == 404
    log_out(browser)
    problems = page_problems(browser)
    assert not problems, problems


def test_a_session_ended_on_the_server_takes_the_page_to_the_login(
        system: LoginSystem, browser: Browser) -> None:
    login_page(browser, system)
    log_in(browser, "erin", PASSWORDS["erin"], "viewer")
    browser.wait(f"{TILES_JS}.filter((t) => t.painted > 0).length === {len(STREAMS)}", 30,
                 "erin's wall, painting")
    wait_for(lambda: metric(system.websocket, "ei_ws_clients") == 1, 10, "the page's websocket")
    # Removing the user ends its sessions at once (core/sessions.py reads the user on lookup).
    client = redis.Redis.from_url(system.redis_url)
    try:
        AuthStore(client).remove_user("erin")
    finally:
        client.close()
    ended = time.monotonic()
    browser.wait(FORM, 15, "the login page after the session ended")
    # The stream list polls every 2 s: its first 401 ends the page's session.
    assert time.monotonic() - ended < 15
    notice = browser.eval("document.querySelector('[data-testid=\"login-notice\"]').textContent")
    assert "session has ended" in notice, notice
    assert browser.eval("document.querySelectorAll('.tile').length") == 0
    wait_for(lambda: metric(system.websocket, "ei_ws_clients") == 0, 10,
             "the websocket closed when the session ended")
    problems = page_problems(browser)
    assert not problems, problems


# The login form's state in one look, taken in the page (so the countdown and the button are
# read at the same instant): null while a login is on its way or before any answer.
FORM_STATE_JS = """(() => {
  const error = document.querySelector('[data-testid="login-error"]');
  const submit = document.querySelector('[data-testid="login-submit"]');
  if (!error || submit.textContent.includes('Logging in')) return null;
  return {kind: error.dataset.kind, text: error.textContent, disabled: submit.disabled,
          retryAfter: +(error.dataset.retryAfter ?? 0), retryAt: +(error.dataset.retryAt ?? 0),
          now: Date.now(), password: document.querySelector('#login-password').value};
})()"""


def test_wrong_passwords_are_rate_limited(system: LoginSystem, browser: Browser) -> None:
    login_page(browser, system)
    states = []
    for _ in range(15):
        browser.fill("#login-name", "mallory")
        browser.fill("#login-password", "not-" + PASSWORDS["mallory"])
        browser.click("[data-testid='login-submit']")
        state = browser.wait(FORM_STATE_JS, 15, "the answer to a login")
        states.append(state)
        assert state["password"] == "", state  # cleared at submit, whatever the answer
        if state["kind"] == "limited":
            break
    kinds = [s["kind"] for s in states]
    assert kinds[0] == "wrong" and kinds[-1] == "limited", kinds
    assert set(kinds[:-1]) == {"wrong"}, kinds
    limited = states[-1]
    assert "Too many failed logins" in limited["text"], limited
    # The seconds of the gateway's Retry-After (at most one interval of 10/min: 6 s), and the
    # button waits for them.
    assert limited["retryAfter"] in range(1, 7), limited
    assert limited["disabled"] == (limited["now"] < limited["retryAt"]), limited
    if limited["disabled"]:
        assert "Try again in" in limited["text"], limited
    browser.screenshot("login-rate-limited.png")
    problems = page_problems(browser)
    assert not problems, problems
