"""What every service process shares: logging, a stop event set by SIGTERM/SIGINT, and the
``/metrics``, ``/healthz``, ``/readyz`` HTTP server.

Services check ``runtime.stop`` each turn of their loop and drain before exiting, which is what
Kubernetes' termination grace period expects.
"""

from __future__ import annotations

import logging
import signal
import socket
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import FrameType

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

log = logging.getLogger(__name__)

#: Socket timeout of the metrics/health server: a probe's request takes milliseconds.
HEALTH_SOCKET_TIMEOUT_S = 10.0

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s[%(process)d]: %(message)s"


def setup_logging(level: str = "INFO") -> None:
    """Configure the root logger once per process."""
    logging.basicConfig(level=getattr(logging, level.upper(), logging.INFO), format=LOG_FORMAT)


class ServiceRuntime:
    """Stop event, signal handling and the health/metrics endpoint of one service process."""

    def __init__(self, name: str, registry: CollectorRegistry | None = None) -> None:
        self.name = name
        self.registry = registry if registry is not None else CollectorRegistry()
        self.stop = threading.Event()
        self.ready = threading.Event()
        self.healthy: Callable[[], bool] = lambda: True
        self._server: ThreadingHTTPServer | None = None

    def install_signal_handlers(self) -> None:
        """SIGTERM and SIGINT set the stop event; a second signal exits at once."""

        def handler(signum: int, _frame: FrameType | None) -> None:
            if self.stop.is_set():
                log.warning("%s: second %s, exiting now", self.name, signal.Signals(signum).name)
                raise SystemExit(1)
            log.info("%s: %s received, draining", self.name, signal.Signals(signum).name)
            self.stop.set()

        signal.signal(signal.SIGTERM, handler)
        signal.signal(signal.SIGINT, handler)

    def serve_health(self, host: str, port: int) -> int:
        """Start the metrics/health server in a daemon thread; returns the bound port."""
        runtime = self

        class Handler(BaseHTTPRequestHandler):
            # A connection that never completes its request would hold a thread for good.
            timeout = HEALTH_SOCKET_TIMEOUT_S

            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                if path == "/metrics":
                    self._reply(200, generate_latest(runtime.registry), CONTENT_TYPE_LATEST)
                elif path == "/healthz":
                    ok = runtime.healthy()
                    self._reply(200 if ok else 503, b"ok\n" if ok else b"unhealthy\n")
                elif path == "/readyz":
                    ok = runtime.ready.is_set() and not runtime.stop.is_set()
                    self._reply(200 if ok else 503, b"ready\n" if ok else b"not ready\n")
                else:
                    self._reply(404, b"not found: try /metrics, /healthz, /readyz\n")

            def _reply(self, code: int, body: bytes, ctype: str = "text/plain") -> None:
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("X-Content-Type-Options", "nosniff")
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                log.debug("metrics %s - " + format, self.address_string(), *args)

        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        ThreadingHTTPServer.address_family = family
        self._server = ThreadingHTTPServer((host, port), Handler)
        self._server.daemon_threads = True
        bound = int(self._server.server_address[1])
        threading.Thread(target=self._server.serve_forever, name=f"{self.name}-metrics",
                         daemon=True).start()
        log.info("%s: metrics and health on http://%s:%d/metrics", self.name, host, bound)
        return bound

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


#: Socket buffer cap for live video connections: about four 768x576 JPEG frames. Loopback and
#: LAN sockets otherwise grow their buffers to megabytes, and a browser that cannot keep up
#: then sees frames seconds late; with a small buffer the senders' newest-frame-wins mailboxes
#: skip frames instead, and what arrives is fresh.
LIVE_SOCKET_BUFFER = 256 * 1024


def cap_socket_buffers(sock: socket.socket | None, send: int = 0, recv: int = 0) -> None:
    """Set SO_SNDBUF / SO_RCVBUF of a connected socket (0 leaves one as it is)."""
    if sock is None:
        return
    try:
        if send:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, send)
        if recv:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, recv)
    except OSError as exc:  # a closed socket or a platform without the option: keep going
        log.debug("socket buffers not capped: %s", exc)
