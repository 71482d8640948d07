"""Redis connections from ``EI_REDIS_URL`` and the backoff every service loop reconnects with.

redis-py already retries a single command a few times; :class:`Backoff` covers the longer
outage (a Redis restart) at the loop level so services log once, wait, and carry on.
"""

from __future__ import annotations

import logging
import random
import threading
from urllib.parse import urlsplit

import redis
from redis.backoff import ExponentialBackoff
from redis.retry import Retry

from .errors import ConfigError
from .redact import ambiguous_credentials

log = logging.getLogger(__name__)

#: Errors that mean "Redis is not reachable right now", as opposed to a bug or bad data.
REDIS_DOWN_ERRORS: tuple[type[BaseException], ...] = (
    redis.ConnectionError,
    redis.TimeoutError,
    redis.exceptions.BusyLoadingError,
    redis.exceptions.TryAgainError,
    ConnectionResetError,
    BrokenPipeError,
)


def check_url(url: str) -> str:
    """Validate a Redis URL (redis://, rediss:// or unix://) and return it.

    The error never shows the URL: a malformed one may hold a password where no redaction
    would find it.
    """
    try:
        parts = urlsplit(url)
        where = parts.path if parts.scheme == "unix" else parts.hostname
        port = parts.port
        valid = (parts.scheme in ("redis", "rediss", "unix") and bool(where)
                 and url.lower().startswith(f"{parts.scheme}://")
                 and (port is None or port > 0))
    except ValueError:  # a port that is not a number
        valid = False
    if not valid:
        raise ConfigError("EI_REDIS_URL must be redis://[[USER]:PASSWORD@]HOST[:PORT][/DB], "
                          "rediss://... (TLS) or unix:///PATH (the value is not shown: it may "
                          "hold a password)")
    problem = ambiguous_credentials(url)
    if problem:
        raise ConfigError(f"EI_REDIS_URL is invalid: {problem} (the value is not shown)")
    return url


def connect(url: str, *, socket_timeout: float = 10.0, decode: bool = False,
            retries: int = 3) -> redis.Redis:
    """Build a client for ``url`` (password and TLS come from the URL; nothing is sent yet).

    ``socket_timeout`` must exceed the longest blocking pop a caller makes. ``retries`` is how
    often redis-py itself retries one command; loops that must not stall (a stream capturing
    while Redis is down) pass fewer and rely on :class:`Backoff`.
    """
    check_url(url)
    return redis.Redis.from_url(
        url,
        socket_timeout=socket_timeout,
        socket_connect_timeout=5.0,
        health_check_interval=15,
        retry=Retry(ExponentialBackoff(cap=1.0, base=0.05), retries=retries),
        retry_on_error=[redis.ConnectionError, redis.TimeoutError],
        decode_responses=decode,
    )


class Backoff:
    """Exponential backoff with jitter for reconnect loops; logs once per outage.

    Thread-safe: a worker's main and publisher threads share one, so an outage is logged
    and its recovery counted once.
    """

    def __init__(self, name: str, base: float = 0.1, cap: float = 5.0) -> None:
        self.name = name
        self.base = base
        self.cap = cap
        self.failures = 0
        self._lock = threading.Lock()

    def failed(self, exc: BaseException, stop: threading.Event) -> None:
        """Record a failure and wait (interruptibly) before the next try."""
        stop.wait(self.record_failure(exc))

    def record_failure(self, exc: BaseException) -> float:
        """Record a failure and return the delay before the next try, without waiting.

        For loops that must keep working while Redis is down (a stream keeps capturing).
        """
        with self._lock:
            if self.failures == 0:
                log.warning("%s: Redis unavailable (%s); retrying with backoff", self.name, exc)
            self.failures += 1
            delay = min(self.cap, self.base * 2 ** min(self.failures - 1, 16))
        return delay * random.uniform(0.5, 1.0)

    def succeeded(self) -> bool:
        """Reset after a successful call; True (and a log line) when it ends an outage, so
        callers count reconnects in one way."""
        if not self.failures:  # the hot path: no lock while all is well
            return False
        with self._lock:
            if not self.failures:
                return False
            log.info("%s: Redis reachable again after %d failed tries", self.name,
                     self.failures)
            self.failures = 0
            return True
