"""What every service process shares: logging, a stop event set by SIGTERM/SIGINT, the
``/metrics``, ``/healthz``, ``/readyz`` HTTP server, and the rules that keep a process from
wedging.

Services check ``runtime.stop`` each turn of their loop and drain before exiting, which is what
Kubernetes' termination grace period expects. The drain is bounded: a process still running
``drain_timeout`` seconds after SIGTERM exits anyway, whatever its threads are stuck in. A
thread started with :meth:`ServiceRuntime.start_thread` that dies of an unexpected exception
stops the process with :data:`EXIT_THREAD_DIED`, so the supervisor (``ei up``, Kubernetes)
restarts it instead of leaving a half-working process behind.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import FrameType

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from .redact import redact_url
from .redisconn import Backoff, RedisClient, connect, retry
from .settings import ServiceSettings

log = logging.getLogger(__name__)

#: Socket timeout of the metrics/health server: a probe's request takes milliseconds.
HEALTH_SOCKET_TIMEOUT_S = 10.0

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s[%(process)d]: %(message)s"

#: ``prctl`` option that names the calling thread (``linux/prctl.h``); the kernel keeps 15 bytes.
_PR_SET_NAME = 15


def name_os_thread(name: str) -> None:
    """Give the calling thread ``name`` where the OS shows it (``top -H``, ``py-spy``,
    ``/proc/<pid>/task/<tid>/comm``): Python 3.11 names only its own thread objects, so every
    thread of a worker showed as ``python`` and its CPU could not be told apart (``ei bench``
    reads it by name). Longer names are cut to 15 bytes; nothing happens without ``prctl``."""
    try:
        prctl = ctypes.CDLL(None).prctl
    except (OSError, AttributeError):  # not Linux
        return
    prctl(_PR_SET_NAME, ctypes.create_string_buffer(name.encode()[:15]), 0, 0, 0)


#: Exit status of a process one of whose threads died unexpectedly (EX_SOFTWARE).
EXIT_THREAD_DIED = 70
#: Exit status of a process that did not finish draining within its drain timeout, or got a
#: second stop signal.
EXIT_FORCED = 1
#: Default bound on the drain after SIGTERM: below the shortest Kubernetes grace period of the
#: manifests (10 s) and ``ei up``'s, so a service ends itself before it is killed.
DRAIN_TIMEOUT = 8.0


def setup_logging(level: str = "INFO") -> None:
    """Configure the root logger once per process."""
    logging.basicConfig(level=getattr(logging, level.upper(), logging.INFO), format=LOG_FORMAT)


class ServiceRuntime:
    """Stop event, signal handling and the health/metrics endpoint of one service process."""

    def __init__(self, name: str, registry: CollectorRegistry | None = None,
                 drain_timeout: float = DRAIN_TIMEOUT) -> None:
        self.name = name
        self.registry = registry if registry is not None else CollectorRegistry()
        self.stop = threading.Event()
        self.ready = threading.Event()
        self.healthy: Callable[[], bool] = lambda: True
        self.drain_timeout = drain_timeout
        #: What ``main()`` returns: 0, or :data:`EXIT_THREAD_DIED` once a thread died.
        self.exit_code = 0
        self._server: ThreadingHTTPServer | None = None
        self._deadline: threading.Timer | None = None
        self._lock = threading.Lock()

    def install_signal_handlers(self) -> None:
        """SIGTERM and SIGINT start the drain; a second signal exits at once.

        "At once" is ``os._exit``: raising SystemExit in the main thread would run ``finally``
        blocks that may wait on the very thing that is stuck.
        """

        def handler(signum: int, _frame: FrameType | None) -> None:
            if self.stop.is_set():
                log.warning("%s: second %s, exiting now", self.name, signal.Signals(signum).name)
                _exit_now(self.exit_code or EXIT_FORCED)
            log.info("%s: %s received, draining (at most %.0f s)", self.name,
                     signal.Signals(signum).name, self.drain_timeout)
            self.begin_stop()

        signal.signal(signal.SIGTERM, handler)
        signal.signal(signal.SIGINT, handler)

    def begin_stop(self) -> None:
        """Set the stop event and start the drain deadline (once)."""
        self.stop.set()
        with self._lock:
            if self._deadline is None:
                self._deadline = threading.Timer(self.drain_timeout, self._drain_expired)
                self._deadline.name = f"{self.name}-drain-deadline"
                self._deadline.daemon = True
                self._deadline.start()

    def _drain_expired(self) -> None:
        code = self.exit_code or EXIT_FORCED
        log.error("%s: still running %.0f s after being told to stop; exiting now with status "
                  "%d", self.name, self.drain_timeout, code)
        _exit_now(code)

    def fail(self, what: str, exc: BaseException) -> None:
        """``what`` died of ``exc``: log it, and stop the process with EXIT_THREAD_DIED."""
        log.critical("%s: %s died unexpectedly; stopping with status %d", self.name, what,
                     EXIT_THREAD_DIED, exc_info=exc)
        self.exit_code = EXIT_THREAD_DIED
        self.begin_stop()

    def start_thread(self, target: Callable[[], object], name: str) -> threading.Thread:
        """Run ``target`` in a daemon thread; an exception escaping it ends the process
        (:meth:`fail`). A thread that returns normally is simply done."""

        def run() -> None:
            try:
                name_os_thread(name)
                target()
            except BaseException as exc:  # noqa: BLE001 - whatever it was, the process is broken
                self.fail(f"thread {name}", exc)

        thread = threading.Thread(target=run, name=name, daemon=True)
        thread.start()
        return thread

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
        self.start_thread(self._server.serve_forever, f"{self.name}-metrics")
        log.info("%s: metrics and health on http://%s:%d/metrics", self.name, host, bound)
        return bound

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


@contextmanager
def running(name: str, settings: ServiceSettings, *, redis_retries: int = 3,
            socket_timeout: float = 10.0) -> Iterator[tuple[ServiceRuntime, RedisClient]]:
    """A service's start-up and shutdown, one order for all: logging, the runtime with its
    signal handlers and health server, a Redis client (nothing is sent yet; a cluster's once a
    node answered); on the way out the health server closes first, then the client.

    ``redis_retries``/``socket_timeout`` go to :func:`.redisconn.connect` (a stream retries
    once so capture never stalls; a worker's timeout exceeds its blocking pop).
    """
    setup_logging(settings.log_level)
    runtime = ServiceRuntime(name, drain_timeout=settings.drain_timeout)
    runtime.install_signal_handlers()
    runtime.serve_health(settings.metrics_host, settings.metrics_port)
    # A cluster client asks for the slots as it is built: while no node answers, back off.
    client = retry(lambda: connect(settings.redis_url, socket_timeout=socket_timeout,
                                   retries=redis_retries), Backoff(name), runtime.stop)
    if client is None:  # told to stop before Redis answered
        runtime.close()
        raise SystemExit(runtime.exit_code)
    log.info("%s: Redis at %s", name, redact_url(settings.redis_url))
    try:
        yield runtime, client
    finally:
        runtime.close()
        client.close()


def _exit_now(code: int) -> None:
    """End the process without waiting for any thread (logs are flushed first)."""
    for handler in logging.getLogger().handlers:
        handler.flush()
    sys.stderr.flush()
    os._exit(code)


class Progress:
    """Tells a wedged loop from an idle or a waiting one, for ``/healthz``.

    The loop calls :meth:`moved` whenever it gets something done, finds nothing to do, or makes
    another try against an unavailable Redis: all signs that it still turns. It is stalled when
    work was waiting (``busy``) and nothing moved for ``limit`` seconds. A Redis outage is not
    a stall: restarting the process would not end it, and would reload every model at once when
    Redis comes back.
    """

    def __init__(self, limit: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = limit
        self.clock = clock
        self._last = clock()

    def moved(self) -> None:
        self._last = self.clock()

    def stalled(self, busy: bool) -> bool:
        return busy and self.clock() - self._last > self.limit


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
