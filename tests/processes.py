"""Start project services as real subprocesses for integration and end-to-end tests."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable
from email.message import Message
from pathlib import Path
from typing import Any

_METRICS_LINE = re.compile(r"metrics and health on http://[^\s]*:(\d+)/metrics")


class Service:
    """One ``ei SERVICE`` process whose combined output goes to a temporary log file."""

    def __init__(self, args: list[str], env: dict[str, str] | None = None,
                 own_group: bool = False) -> None:
        """``own_group`` starts it in a process group of its own, which a test can then signal
        whole, as a terminal's Ctrl-C does (``send(sig, group=True)``)."""
        self.args = args
        self.log_path = Path(tempfile.mkstemp(prefix=f"ei-{args[0]}-", suffix=".log")[1])
        self._metrics_port = 0
        full_env = environment(**(env or {}))
        cmd = [sys.executable, "-m", "elastic_inference.cli", *args]
        if args[0] != "up":
            # Port 0: the service binds a free port itself and logs it (see ``metrics_port``). A
            # port picked here and bound later could be taken meanwhile by another process.
            cmd += ["--metrics-host", "127.0.0.1", "--metrics-port", "0"]
        self.signalled = False
        self._log = self.log_path.open("wb")
        self.proc = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT,
                                     env=full_env, start_new_session=own_group)

    @property
    def metrics_port(self) -> int:
        """The port the service bound for /metrics, read from its start-up log line."""
        if not self._metrics_port:
            def bound() -> int:
                found = _METRICS_LINE.search(self.output())
                if found:
                    return int(found.group(1))
                if not self.alive():
                    raise AssertionError(f"ei {self.args[0]} exited:\n{self.output()[-2000:]}")
                return 0
            self._metrics_port = wait_for(bound, 60, f"ei {self.args[0]}'s metrics port")
        return self._metrics_port

    def alive(self) -> bool:
        return self.proc.poll() is None

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def send(self, sig: int = signal.SIGTERM, group: bool = False) -> None:
        """Send ``sig`` (a second one would mean "exit now", so it is sent at most once); with
        ``group``, to its whole process group (started ``own_group``)."""
        if self.alive() and not self.signalled:
            self.signalled = True
            if group:
                os.killpg(self.proc.pid, sig)
            else:
                self.proc.send_signal(sig)

    def stop(self, timeout: float = 20.0, sig: int = signal.SIGTERM) -> int:
        """Signal once (unless done already), wait, and kill only after ``timeout``."""
        self.send(sig)
        try:
            code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait()
        self._log.close()
        return code


def environment(**extra: str) -> dict[str, str]:
    """This process's environment without any ``EI_*`` variable (a developer's own settings
    must not leak into a test), plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("EI_")}
    env.update(extra)
    return env


def wait_for(check: Callable[[], Any], timeout: float, what: str, interval: float = 0.25) -> Any:
    """Poll ``check`` until it returns something truthy; fail naming ``what``."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = check()
            if value:
                return value
        except Exception as exc:  # noqa: BLE001 - any error here just means "not yet"
            last_error = exc
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}"
                         + (f" (last error: {last_error})" if last_error else ""))


def listening(port: int, proc: subprocess.Popen[bytes], timeout: float) -> bool:
    """Wait until ``proc`` (a server it started) accepts connections on 127.0.0.1:``port``;
    False if it exits first or ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return True
        except OSError:
            if time.monotonic() > deadline or proc.poll() is not None:
                return False
            time.sleep(0.05)


def http(url: str, method: str = "GET", body: bytes | Iterable[bytes] | None = None,
         headers: dict[str, str] | None = None, timeout: float = 15.0
         ) -> tuple[int, Message, bytes]:
    """One HTTP request; error statuses are returned, not raised. An iterable body without a
    length goes out chunked."""
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, resp.headers, resp.read()
    except urllib.error.HTTPError as err:
        with err:
            return err.code, err.headers, err.read()


def get_json(url: str, timeout: float = 5.0) -> tuple[int, Any]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read() or b"null")
