"""No SSRF through analysis job sources: real ``ei gateway`` and ``ei analysis`` processes.

A plain TCP listener on loopback records every connection; jobs aimed at it, at the gateway
itself, at 169.254.169.254, or through a redirect from an allowed server are refused with 400
and a reason, and the listener sees nobody. The runner checks again before it opens a source,
and FFmpeg is not allowed to follow a redirect it alone is served.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import redis

from elastic_inference.core.auth import Role
from elastic_inference.core.jobrequest import JobRequest
from elastic_inference.core.jobs import JobStore
from tests.analysis_api import Api
from tests.credentials import SECRET_ENV, bearer
from tests.processes import Service, wait_for
from tests.redis_server import free_port

pytestmark = pytest.mark.integration

#: An allowed camera server on a second loopback address, listed explicitly (Linux routes all
#: of 127.0.0.0/8 to the loopback interface).
ALLOWED_HOST = "127.0.0.2"


class Listener:
    """A TCP server on 127.0.0.1 that only counts the connections it accepts."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            conn.close()

    def close(self) -> None:
        self.sock.close()


class Redirector:
    """An HTTP server on :data:`ALLOWED_HOST`: ``/to?URL`` redirects to URL;
    ``/ffmpeg-only?URL`` redirects FFmpeg (user agent ``Lavf``) only, answering others 200."""

    def __init__(self) -> None:
        served = self.requests = []  # type: list[tuple[str, str]]

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                path, _, target = self.path.partition("?")
                agent = self.headers.get("User-Agent", "")
                served.append((path, agent))
                if path == "/to" or (path == "/ffmpeg-only" and agent.startswith("Lavf")):
                    self.send_response(302)
                    self.send_header("Location", target)
                else:
                    self.send_response(200)
                    self.send_header("Content-Type", "video/mp4")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer((ALLOWED_HOST, 0), Handler)
        self.server.daemon_threads = True
        self.base = f"http://{ALLOWED_HOST}:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def listener() -> Iterator[Listener]:
    found = Listener()
    yield found
    found.close()


@pytest.fixture
def redirector() -> Iterator[Redirector]:
    found = Redirector()
    yield found
    found.close()


def test_jobs_cannot_reach_loopback_metadata_or_the_gateway(
        redis_url: str, redis_client: redis.Redis, sample_dir: Path, listener: Listener,
        redirector: Redirector) -> None:
    # Names listed (localhost, this host) resolve to loopback or own addresses, which are not.
    env = {"EI_REDIS_URL": redis_url, **SECRET_ENV,
           "EI_SOURCE_ALLOW": f"{ALLOWED_HOST},localhost,{socket.gethostname()}"}
    port = free_port()
    gateway = Service(["gateway", "--host", "127.0.0.1", "--port", str(port),
                       "--media-dir", str(sample_dir)], env)
    runner = Service(["analysis", "--media-dir", str(sample_dir)], env)
    api = Api(port, bearer(redis_client, Role.OPERATOR))
    try:
        wait_for(lambda: not gateway.alive() or api.call("GET", "/readyz")[0] == 200, 30,
                 "ei gateway to become ready")
        assert gateway.alive(), gateway.output()
        loop = f"http://127.0.0.1:{listener.port}/x.mjpg"
        metadata = "http://169.254.169.254/latest/meta-data/"
        refused = [
            (f"http://localhost:{port}/api/streams/cam/snapshot.jpg", "does not list explicitly"),
            (f"http://{socket.gethostname()}:{port}/api/analysis", "does not list explicitly"),
            (f"http://127.0.0.1:{port}/api/analysis", "not in EI_SOURCE_ALLOW"),
            (loop, "not in EI_SOURCE_ALLOW"),
            (f"http://localhost:{listener.port}/x.mjpg", "a loopback address"),
            (f"rtsp://localhost:{listener.port}/live", "does not list explicitly"),
            (f"rtsps://{ALLOWED_HOST}:{listener.port}/live", "must be rtsp, http, https"),
            (metadata, "not in EI_SOURCE_ALLOW"),
            (f"{redirector.base}/to?{loop}", f"redirects to {loop}, which is refused"),
            (f"{redirector.base}/to?{metadata}", "redirects to http://169.254.169.254/"),
            (f"{redirector.base}/to?http://localhost:{listener.port}/", "a loopback address"),
        ]
        for source, reason in refused:
            code, answer = api.post({"source": source, "types": ["people"]})
            assert code == 400 and reason in answer["error"], (source, answer)
        assert listener.accepted == 0
        assert [p for p, _ in redirector.requests] == ["/to"] * 3  # each redirect was read
        assert "snapshot.jpg" not in gateway.output()  # it never fetched itself
        code, listing = api.get("/api/analysis")
        assert code == 200 and listing["jobs"] == []

        # A job stored by other means (or whose DNS changed since): the runner checks again.
        behind = JobStore(redis_client).create(JobRequest(
            f"http://localhost:{listener.port}/x.mjpg", ("people",)))
        failed = wait_for(lambda: (lambda j: j if j["status"] == "failed" else None)(
            api.get(f"/api/analysis/{behind}")[1]), 60, "the runner to refuse the job")
        assert "a loopback address" in failed["error"], failed

        # Allowed, not redirected when checked; FFmpeg alone is sent to loopback: not followed.
        sneaky = api.submit({"source": f"{redirector.base}/ffmpeg-only?{loop}",
                             "types": ["people"]})
        failed = wait_for(lambda: (lambda j: j if j["status"] == "failed" else None)(
            api.get(f"/api/analysis/{sneaky}")[1]), 60, "the runner to fail the job")
        assert "cannot open the source" in failed["error"], failed
        agents = [a for p, a in redirector.requests if p == "/ffmpeg-only"]
        assert any(a.startswith("Lavf") for a in agents), agents  # FFmpeg was redirected
        assert listener.accepted == 0
        assert gateway.alive() and runner.alive()
    finally:
        gateway.stop()
        runner.stop()
    for service in (gateway, runner):
        assert "Traceback" not in service.output(), service.output()[-3000:]
