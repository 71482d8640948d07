"""A real headless Chromium for the dashboard tests, driven through spa/e2e/driver.mjs.

The driver is a node script (playwright-core with Debian's /usr/bin/chromium) that answers
one JSON request per line; this class sends them and keeps the test logic in Python. Missing
pieces fail loudly with the make target that installs them, never skip.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
SPA = REPO / "spa"
DRIVER = SPA / "e2e" / "driver.mjs"
CHROMIUM = os.environ.get("EI_CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = REPO / "test-artifacts"


def require_browser_tools() -> None:
    """Fail (not skip) naming the make target when a piece of the browser tests is missing."""
    if not Path(CHROMIUM).is_file():
        pytest.fail(f"{CHROMIUM} not found: run `make chromium` (Debian's chromium package)")
    if shutil.which("node") is None:
        pytest.fail("node not found: install Node.js 20.19+ (the SPA build needs it too)")
    if not (SPA / "node_modules" / "playwright-core").is_dir():
        pytest.fail("spa/node_modules/playwright-core missing: run `make spa` (npm ci)")
    if not (SPA / "dist" / "index.html").is_file():
        pytest.fail("spa/dist/index.html missing: run `make spa` (npm run build)")


class Browser:
    """One Chromium page; every call waits for the driver's answer."""

    def __init__(self) -> None:
        require_browser_tools()
        self.log = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(
            ["node", str(DRIVER)], cwd=SPA, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=self.log, text=True, bufsize=1, env={**os.environ, "EI_CHROMIUM": CHROMIUM})
        self.next_id = 0
        self.version = self._answer(0)

    def _answer(self, wanted: int) -> Any:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            self.log.seek(0)
            raise AssertionError("the browser driver exited: "
                                 + self.log.read().decode(errors="replace")[-3000:])
        answer = json.loads(line)
        assert answer["id"] == wanted, answer
        if not answer["ok"]:
            raise AssertionError(f"browser: {answer['error']}")
        return answer["value"]

    def call(self, op: str, **args: Any) -> Any:
        assert self.proc.stdin is not None
        self.next_id += 1
        self.proc.stdin.write(json.dumps({"id": self.next_id, "op": op, **args}) + "\n")
        return self._answer(self.next_id)

    def goto(self, url: str) -> None:
        status = self.call("goto", url=url)
        assert status == 200, f"{url} answered {status}"

    def leave(self) -> None:
        """Go to about:blank and forget the page's complaints: a page whose services are being
        stopped complains (rightly) about lost connections that no test is about."""
        self.call("goto", url="about:blank")
        self.problems()

    def eval(self, expr: str) -> Any:
        """The value of a JavaScript expression (or a function's text, called) in the page."""
        return self.call("eval", expr=expr)

    def wait(self, expr: str, timeout: float, what: str, interval: float = 0.25) -> Any:
        """Poll ``expr`` until it is truthy; fail naming ``what`` with its last value."""
        deadline = time.monotonic() + timeout
        value: Any = None
        while time.monotonic() < deadline:
            value = self.eval(expr)
            if value:
                return value
            time.sleep(interval)
        raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what} "
                             f"(last value: {value!r})")

    def click(self, selector: str) -> None:
        self.call("click", selector=selector)

    def fill(self, selector: str, value: str) -> None:
        """Type ``value`` into a field as a user would (input events, so Vue sees it)."""
        self.call("fill", selector=selector, value=value)

    def mouse(self, *steps: tuple[str, float, float]) -> None:
        """Real mouse input: ``("move" | "down" | "up" | "click", x, y)`` in page pixels
        (``down`` and ``up`` act where the mouse is)."""
        self.call("mouse", steps=[{"action": a, "x": x, "y": y} for a, x, y in steps])

    def viewport(self, width: int, height: int) -> None:
        self.call("viewport", width=width, height=height)

    def screenshot(self, name: str, full_page: bool = False) -> Path:
        ARTIFACTS.mkdir(exist_ok=True)
        path = ARTIFACTS / name
        self.call("screenshot", path=str(path), fullPage=full_page)
        return path

    def ws_frames(self) -> list[dict[str, Any]]:
        """The live messages the page's websockets received since the last call, as the
        browser got them: ``binary`` (a frame's JPEG with its first result), ``bytes``,
        ``jpeg`` (the JPEG's size, 0 for text), and the result's ``stream``, ``seq``, ``type``."""
        value: list[dict[str, Any]] = self.call("wsFrames")
        return value

    def problems(self) -> list[str]:
        """Console errors and page errors since the last call (CSP violations included)."""
        value: list[str] = self.call("problems")
        return value

    def close(self) -> None:
        if self.proc.stdin is not None and not self.proc.stdin.closed:
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()
