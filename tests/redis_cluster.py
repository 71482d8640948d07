"""A real Redis Cluster of three masters on free loopback ports, started and torn down by the
tests themselves: Debian's redis-server 7 (``make redis-server``) with ``--cluster-enabled
yes``, joined by ``redis-cli --cluster create``."""

from __future__ import annotations

import os
import random
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import redis
from redis.cluster import RedisCluster
from redis.maint_notifications import MaintNotificationsConfig

from tests.redis_server import ROOT_USER, debian_binary, free_port

MASTERS = 3


def _free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def cluster_port() -> int:
    """A free loopback port whose cluster bus port (+10000) is free too: Redis refuses a port
    above 55535 in a cluster."""
    for _ in range(200):
        port = free_port()
        if port <= 55535 and _free(port + 10000):
            return port
        port = random.randint(20000, 55535)
        if _free(port) and _free(port + 10000):
            return port
    raise RuntimeError("no free port pair for a Redis cluster node")


class RedisClusterServers:
    """Three cluster-enabled redis-servers in a temp dir, slots assigned, no replicas. With
    ``aclfile``, every node loads its users plus :data:`ROOT_USER` (``root_password``), which
    the set-up and :meth:`client` log in as; ``url`` then has no credentials."""

    def __init__(self, masters: int = MASTERS, aclfile: str = "",
                 root_password: str = "") -> None:
        self.aclfile = aclfile
        self.root_password = root_password
        self.binary = debian_binary()
        self.cli = str(Path(self.binary).with_name("redis-cli"))
        self.ports = [cluster_port() for _ in range(masters)]
        self.dir = Path(tempfile.mkdtemp(prefix="ei-redis-cluster-"))
        self.procs: list[subprocess.Popen[bytes]] = []

    def _login(self) -> dict[str, str]:
        return {"username": ROOT_USER, "password": self.root_password} if self.aclfile else {}

    @property
    def url(self) -> str:
        """What ``EI_REDIS_URL`` names for the services: any one node, the scheme saying
        "cluster" (core/redisconn.py)."""
        return f"redis+cluster://127.0.0.1:{self.ports[0]}/0"

    @property
    def root_url(self) -> str:
        """``url`` logged in as :data:`ROOT_USER` when the nodes have users."""
        if not self.aclfile:
            return self.url
        return f"redis+cluster://{ROOT_USER}:{self.root_password}@127.0.0.1:{self.ports[0]}/0"

    def start(self) -> RedisClusterServers:
        try:
            return self._start()
        except BaseException:
            self.stop()
            raise

    def _start(self) -> RedisClusterServers:
        if self.aclfile:
            (self.dir / "users.acl").write_text(
                self.aclfile + f"user {ROOT_USER} on >{self.root_password} ~* &* +@all\n")
        for port in self.ports:
            node = self.dir / str(port)
            node.mkdir()
            self.procs.append(subprocess.Popen(self._node_args(port),
                                               stdout=(node / "log").open("wb"),
                                               stderr=subprocess.STDOUT))
        for port in self.ports:
            self._wait_ping(port)
        # The password goes in the environment (REDISCLI_AUTH), never in argv.
        login = ["--user", ROOT_USER] if self.aclfile else []
        subprocess.run([self.cli, *login, "--cluster", "create",
                        *(f"127.0.0.1:{p}" for p in self.ports),
                        "--cluster-replicas", "0", "--cluster-yes"],
                       check=True, capture_output=True, timeout=60,
                       env={**os.environ, **({"REDISCLI_AUTH": self.root_password}
                                             if self.aclfile else {})})
        self._wait_ok()
        return self

    def _node_args(self, port: int) -> list[str]:
        users = ["--aclfile", str(self.dir / "users.acl")] if self.aclfile else []
        return [self.binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                "--appendonly", "no", "--dir", str(self.dir / str(port)), "--cluster-enabled",
                "yes", "--cluster-config-file", "nodes.conf", "--cluster-node-timeout", "2000",
                *users]

    def kill(self, index: int) -> None:
        """SIGKILL one node (a crash); :meth:`revive` starts it again on its port."""
        self.procs[index].kill()
        self.procs[index].wait()

    def revive(self, index: int) -> None:
        """Start a killed node with its cluster configuration (it rejoins, keeping its slots;
        its data is gone, as after a crash without persistence), and wait for cluster_state:ok."""
        port = self.ports[index]
        self.procs[index] = subprocess.Popen(
            self._node_args(port), stdout=(self.dir / str(port) / "log").open("ab"),
            stderr=subprocess.STDOUT)
        self._wait_ping(port)
        self._wait_ok()

    def _wait_ok(self) -> None:
        deadline = time.monotonic() + 30
        while not self._ok():
            if time.monotonic() > deadline:
                raise RuntimeError("the Redis cluster did not reach cluster_state:ok")
            time.sleep(0.1)

    def _wait_ping(self, port: int) -> None:
        client = redis.Redis(host="127.0.0.1", port=port, driver_info=None, **self._login(),
                             maint_notifications_config=MaintNotificationsConfig(enabled=False))
        deadline = time.monotonic() + 10
        try:
            while True:
                try:
                    client.ping()
                    return
                except redis.ConnectionError:
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"redis-server did not start on {port}") from None
                    time.sleep(0.05)
        finally:
            client.close()

    def _ok(self) -> bool:
        for port in self.ports:
            with redis.Redis(host="127.0.0.1", port=port, driver_info=None, **self._login(),
                             maint_notifications_config=MaintNotificationsConfig(
                                 enabled=False)) as client:
                info = client.execute_command("CLUSTER", "INFO")
                text = info.decode() if isinstance(info, bytes) else str(info)
                if "cluster_state:ok" not in text:
                    return False
        return True

    def client(self) -> RedisCluster:
        """A test's own cluster client (text replies)."""
        return RedisCluster(host="127.0.0.1", port=self.ports[0], decode_responses=True,
                            **self._login())

    def acl_log(self) -> list[dict[str, object]]:
        """Every node's ACL refusals (needs ``aclfile``)."""
        found: list[dict[str, object]] = []
        for port in self.ports:
            with redis.Redis(host="127.0.0.1", port=port, **self._login()) as node:
                found += [{k: v for k, v in entry.items()
                           if k in ("reason", "object", "username", "count")}
                          for entry in node.acl_log(count=128)]
        return found

    def stop(self) -> None:
        for proc in self.procs:
            proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.procs = []
        shutil.rmtree(self.dir, ignore_errors=True)
