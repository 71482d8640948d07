"""A real Prometheus on a free loopback port, and promtool, for the monitoring tests.

Both come from the Debian ``prometheus`` package (``make prometheus``). A missing binary fails
the test instead of skipping it: the monitoring manifests are only proven by running them.
"""

from __future__ import annotations

import math
import shutil
import subprocess
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.processes import get_json, wait_for
from tests.redis_server import free_port

Sample = dict[str, Any]  # one element of a Prometheus instant-vector result


def binary(name: str) -> str:
    """Path of ``name`` (prometheus or promtool); fails the test if it is not installed."""
    found = shutil.which(name)
    if not found:
        pytest.fail(f"{name} not found on PATH: `make prometheus` installs it "
                    "(Debian package prometheus)", pytrace=False)
    return found


def promtool(*args: str, cwd: Path | None = None) -> str:
    """Run ``promtool ARGS`` and return its output; fail with the output if it fails."""
    proc = subprocess.run([binary("promtool"), *args], cwd=cwd, capture_output=True, text=True,
                          timeout=120, check=False)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"promtool {' '.join(args)} failed:\n{output}"
    return output


def has_number(samples: list[Sample]) -> bool:
    """True if at least one sample has a value that is a number (NaN is not)."""
    return any(not math.isnan(float(s["value"][1])) for s in samples)


class PrometheusServer:
    """``prometheus`` with the given configuration and its own storage in ``workdir``."""

    def __init__(self, config: dict[str, Any], workdir: Path) -> None:
        self.workdir = workdir
        self.config_path = workdir / "prometheus.yml"
        self.config_path.write_text(yaml.safe_dump(config, sort_keys=False))
        self.log_path = workdir / "prometheus.log"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30.0) -> PrometheusServer:
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                [binary("prometheus"), f"--config.file={self.config_path}",
                 f"--storage.tsdb.path={self.workdir / 'data'}",
                 f"--web.listen-address=127.0.0.1:{self.port}", "--log.level=warn"],
                stdout=log, stderr=subprocess.STDOUT)

        wait_for(self._ready, timeout, "Prometheus to be ready")
        return self

    def _ready(self) -> bool:
        assert self.proc is not None and self.proc.poll() is None, (
            f"Prometheus exited:\n{self.log()}")
        with urllib.request.urlopen(f"{self.url}/-/ready", timeout=2) as resp:
            return bool(resp.status == 200)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.proc = None

    def api(self, path: str, **params: str | list[str]) -> Any:
        """GET /api/v1/PATH; returns ``data``, failing with Prometheus' error text."""
        url = f"{self.url}/api/v1/{path}?{urllib.parse.urlencode(params, doseq=True)}"
        code, body = get_json(url)
        assert code == 200 and body["status"] == "success", (
            f"Prometheus {path} {params}: HTTP {code}: {body}")
        return body["data"]

    def query(self, expr: str) -> list[Sample]:
        """Instant query now; the vector's samples (a scalar result comes back as one)."""
        data = self.api("query", query=expr)
        if data["resultType"] == "scalar":
            return [{"metric": {}, "value": data["result"]}]
        assert data["resultType"] == "vector", f"{expr}: {data['resultType']} result"
        return list(data["result"])

    def series(self, match: str) -> list[dict[str, str]]:
        return list(self.api("series", **{"match[]": match}))

    def label_values(self, label: str, match: str) -> list[str]:
        return list(self.api(f"label/{label}/values", **{"match[]": match}))
