"""``ei stream`` run as a process for the tests, and what it shows: its registry entry and its
metrics."""

from __future__ import annotations

import signal
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

import redis

from elastic_inference.core.registry import StreamRegistry
from tests.conftest import REPO
from tests.processes import environment

#: The types the tests' streams feed.
TYPES = ("face", "people")


def clean_env(**extra: str) -> dict[str, str]:
    return environment(**{"EI_METRICS_HOST": "127.0.0.1", "EI_METRICS_PORT": "0", **extra})


class StreamProcess:
    """``python -m elastic_inference.cli stream ...`` with its log in a file."""

    def __init__(self, log_path: Path, args: list[str], env: dict[str, str]) -> None:
        self.log_path = log_path
        self._log = log_path.open("wb")
        self.proc = subprocess.Popen([sys.executable, "-m", "elastic_inference.cli", "stream",
                                      *args], cwd=REPO, env=env, stdout=self._log,
                                     stderr=subprocess.STDOUT)

    @property
    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def running(self) -> bool:
        return self.proc.poll() is None

    def terminate(self, timeout: float = 10.0) -> int:
        if self.running():
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout)
        finally:
            self._log.close()

    def kill(self) -> None:
        if self.running():
            self.proc.kill()
            self.proc.wait(timeout=10)
        self._log.close()


def registry_entry(client: redis.Redis, stream_id: str) -> dict[str, Any] | None:
    for member in StreamRegistry(client).members():
        if member.id == stream_id:
            return member.info
    return None


def metric(port: int, line_start: str) -> float | None:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as reply:
        for line in reply.read().decode().splitlines():
            if line.startswith(line_start):
                return float(line.rsplit(" ", 1)[1])
    return None
