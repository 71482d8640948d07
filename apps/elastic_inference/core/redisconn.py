"""Redis connections from ``EI_REDIS_URL``, which Redis errors pass, and the backoff every
service loop retries them with.

redis-py already retries a single command a few times; :class:`Backoff` covers the longer
outage (a Redis restart, a full ``maxmemory``, a failover) at the loop level so services log
once, wait, and carry on. Which errors are worth retrying is decided once, here
(:data:`REDIS_DOWN_ERRORS`); anything else is a bug or a misconfiguration and ends the loop.
"""

from __future__ import annotations

import logging
import random
import re
import threading
from collections.abc import Callable
from typing import Any, TypeAlias, TypeVar
from urllib.parse import urlsplit

import redis
from redis.backoff import ExponentialBackoff
from redis.cluster import ClusterPipeline, RedisCluster
from redis.commands.core import Script
from redis.exceptions import RedisClusterException
from redis.maint_notifications import MaintNotificationsConfig
from redis.retry import Retry

from .errors import ConfigError
from .redact import ambiguous_credentials

log = logging.getLogger(__name__)

T = TypeVar("T")

#: What :func:`connect` returns: a client of one Redis server, or of a Redis Cluster (a
#: ``redis+cluster://`` URL). Every multi-key operation of the project keeps its keys in one
#: hash slot (core/keys.py, doc/scaling.md "Redis Cluster"), so the core classes take either.
RedisClient: TypeAlias = "redis.Redis | RedisCluster"

#: URL schemes of a Redis Cluster: the scheme redis-py's cluster client is given, by ours.
CLUSTER_SCHEMES = {"redis+cluster": "redis", "rediss+cluster": "rediss"}


class RedisRefusedError(redis.ResponseError):
    """Redis refused a command for a condition that passes without the caller changing
    anything: ``NOREPLICAS`` (too few replicas acknowledge writes), ``MISCONF`` (writes stopped
    after a failed snapshot) or ``BUSY`` (a long script is running)."""


class ReadOnlyReplicaError(redis.ReadOnlyError, redis.ConnectionError):
    """``READONLY``: the connection reaches a replica, typically the old primary after a
    failover. Also a ConnectionError, so redis-py drops the connection and reconnects (which
    resolves the service name again and reaches the new primary) before the loop backs off."""


#: Errors that mean "Redis cannot do this now, try again later", as opposed to a bug or bad
#: data: unreachable, loading its data, or refusing writes for a passing reason (``OOM`` at
#: ``maxmemory`` with ``noeviction``, ``READONLY`` during a failover, ``MASTERDOWN``,
#: ``TRYAGAIN``, ``CLUSTERDOWN``, ``NOREPLICAS``, ``MISCONF``, ``BUSY``). Every other
#: ResponseError (``WRONGTYPE``, ``NOPERM``, a syntax error, an error raised by one of our own
#: Lua scripts) says the code or the configuration is wrong: retrying cannot succeed, so it
#: propagates and ends the loop, and the process, loudly.
REDIS_DOWN_ERRORS: tuple[type[BaseException], ...] = (
    redis.ConnectionError,  # also LOADING (BusyLoadingError) and READONLY (ReadOnlyReplicaError)
    redis.TimeoutError,
    redis.exceptions.OutOfMemoryError,
    redis.exceptions.ReadOnlyError,
    redis.exceptions.TryAgainError,
    redis.exceptions.ClusterDownError,  # also MASTERDOWN (MasterDownError)
    # A cluster whose node serving the slot is down or being failed over: the client finds
    # no node for the slot until the cluster heals.
    redis.exceptions.SlotNotCoveredError,
    RedisRefusedError,
    ConnectionResetError,
    BrokenPipeError,
)
#: What a service answers a client while Redis cannot be reached (503).
REDIS_DOWN_MESSAGE = "Redis is unavailable; retry shortly"

#: Codes of :data:`REDIS_DOWN_ERRORS` replies that redis-py leaves as a plain ResponseError.
_REFUSED_CODES = ("NOREPLICAS", "MISCONF", "BUSY")
#: A transient refusal of a command inside a Lua script: Redis 6 reports it as ``ERR Error
#: running script ...: @user_script: 1: -OOM ...`` (Redis 7 keeps the code in front).
_IN_SCRIPT = re.compile(r": -(OOM|READONLY|LOADING|MASTERDOWN|TRYAGAIN|CLUSTERDOWN|NOREPLICAS|"
                        r"MISCONF|BUSY) ")
_SCRIPT_CODES: dict[str, type[redis.ResponseError] | type[redis.ConnectionError]] = {
    "OOM": redis.exceptions.OutOfMemoryError,
    "READONLY": ReadOnlyReplicaError,
    "LOADING": redis.exceptions.BusyLoadingError,
    "MASTERDOWN": redis.exceptions.MasterDownError,
    "TRYAGAIN": redis.exceptions.TryAgainError,
    "CLUSTERDOWN": redis.exceptions.ClusterDownError,
}
#: redis-py prefixes a pipeline's error with the failed command and its arguments, which may
#: hold frame bytes or a job's source URL: never logged.
_PIPELINE_PREFIX = re.compile(r"^Command # \d+ \(.*\) of pipeline caused error: ", re.DOTALL)


def classify(exc: redis.ResponseError) -> redis.RedisError:
    """The :data:`REDIS_DOWN_ERRORS` class for a transient refusal that redis-py reports as a
    plain ResponseError (or as ReadOnlyError, which is not reconnected); ``exc`` otherwise."""
    message = str(exc)
    if isinstance(exc, ReadOnlyReplicaError):
        return exc
    if isinstance(exc, redis.exceptions.ReadOnlyError):
        return ReadOnlyReplicaError(message)
    if type(exc) is not redis.ResponseError:
        return exc
    if message.split(" ", 1)[0] in _REFUSED_CODES:
        return RedisRefusedError(message)
    inner = _IN_SCRIPT.search(message)
    if inner is None:
        return exc
    return _SCRIPT_CODES.get(inner.group(1), RedisRefusedError)(message)


class _Classifying:
    """Mixed into redis-py's connection classes: every error reply passes :func:`classify`,
    so plain commands, pipelines, transactions and scripts all raise the same classes."""

    def read_response(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().read_response(*args, **kwargs)  # type: ignore[misc]
        except redis.ResponseError as exc:
            better = classify(exc)
            if better is exc:
                raise
            raise better from None


class _TcpConnection(_Classifying, redis.Connection):
    pass


class _TlsConnection(_Classifying, redis.SSLConnection):
    pass


class _UnixConnection(_Classifying, redis.UnixDomainSocketConnection):
    pass


_CONNECTION_CLASSES: dict[str, type[redis.Connection] | type[redis.UnixDomainSocketConnection]] = {
    "redis": _TcpConnection, "rediss": _TlsConnection, "unix": _UnixConnection}


def error_text(exc: BaseException) -> str:
    """``exc`` as it may be logged: its class and the server's message, without the command
    and arguments redis-py puts before a pipeline's error."""
    return f"{type(exc).__name__}: {_PIPELINE_PREFIX.sub('', str(exc))}"


def check_url(url: str) -> str:
    """Validate a Redis URL (redis://, rediss://, unix://, or redis+cluster:// and
    rediss+cluster:// for a Redis Cluster) and return it.

    The error never shows the URL: a malformed one may hold a password where no redaction
    would find it.
    """
    try:
        parts = urlsplit(url)
        where = parts.path if parts.scheme == "unix" else parts.hostname
        port = parts.port
        valid = (parts.scheme in ("redis", "rediss", "unix", *CLUSTER_SCHEMES) and bool(where)
                 and url.lower().startswith(f"{parts.scheme}://")
                 and (port is None or port > 0))
        # A cluster has database 0 only.
        if valid and parts.scheme in CLUSTER_SCHEMES:
            valid = parts.path.strip("/") in ("", "0")
    except ValueError:  # a port that is not a number
        valid = False
    if not valid:
        raise ConfigError("EI_REDIS_URL must be redis://[[USER]:PASSWORD@]HOST[:PORT][/DB], "
                          "rediss://... (TLS), unix:///PATH, or redis+cluster://... "
                          "(rediss+cluster://, TLS) naming any node of a Redis Cluster, "
                          "database 0 (the value is not shown: it may hold a password)")
    problem = ambiguous_credentials(url)
    if problem:
        raise ConfigError(f"EI_REDIS_URL is invalid: {problem} (the value is not shown)")
    return url


def is_cluster_url(url: str) -> bool:
    """Whether ``url`` names a Redis Cluster (``redis+cluster://``, ``rediss+cluster://``)."""
    return urlsplit(url).scheme in CLUSTER_SCHEMES


def connect(url: str, *, socket_timeout: float = 10.0, decode: bool = False,
            retries: int = 3) -> RedisClient:
    """Build a client for ``url`` (password and TLS come from the URL; nothing is sent yet).

    ``socket_timeout`` must exceed the longest blocking pop a caller makes. ``retries`` is how
    often redis-py itself retries one command; loops that must not stall (a stream capturing
    while Redis is down) pass fewer and rely on :class:`Backoff`.

    A cluster URL names one node; redis-py's cluster client learns the others (CLUSTER SLOTS)
    as it is built, which is then sent: ConnectionError when no node answers. It follows MOVED
    and ASK redirections after a resharding or a failover.
    """
    check_url(url)
    retry = Retry(ExponentialBackoff(cap=1.0, base=0.05), retries=retries)
    common: dict[str, Any] = {
        "socket_timeout": socket_timeout,
        "socket_connect_timeout": 5.0,
        "decode_responses": decode,
        # No CLIENT SETINFO nor CLIENT MAINT_NOTIFICATIONS on connect: a component's ACL
        # user may not run them (core/acl.py), and each refusal is an ACL LOG entry.
        "driver_info": None,
        "maint_notifications_config": MaintNotificationsConfig(enabled=False),
    }
    scheme = urlsplit(url).scheme
    if scheme in CLUSTER_SCHEMES:
        plain = CLUSTER_SCHEMES[scheme] + url[len(scheme):]
        try:
            return RedisCluster.from_url(
                plain, retry=retry,
                connection_class=_CONNECTION_CLASSES[CLUSTER_SCHEMES[scheme]], **common)
        except RedisClusterException as exc:  # no node answered (its text holds no password)
            raise redis.ConnectionError(f"Redis Cluster unreachable: {exc}") from None
    return redis.Redis.from_url(
        url,
        health_check_interval=15,
        retry=retry,
        retry_on_error=[redis.ConnectionError, redis.TimeoutError],
        connection_class=_CONNECTION_CLASSES[scheme],
        **common,
    )


def run_script(script: Script, keys: list[str], args: list[Any], pipe: Any) -> Any:
    """Queue ``script`` on ``pipe``. redis-py's cluster pipeline refuses EVALSHA (it could not
    load a missing script on the right node), so there the script goes whole with EVAL; a
    pipeline of one server keeps EVALSHA. The keys of one call share a hash slot."""
    if isinstance(pipe, ClusterPipeline):
        return pipe.execute_command("EVAL", script.script, len(keys), *keys, *args)
    return script(keys=keys, args=args, client=pipe)


def forget_traceback(exc: BaseException) -> None:
    """Drop the tracebacks of ``exc`` and the exceptions it chains, once it is handled.

    redis-py keeps a failed pipeline's error in a list that the error's own traceback reaches,
    a reference cycle; through ``f_back`` the cycle holds every frame of the failed call, the
    caller's locals included, until the cyclic collector runs, which a quiet loop rarely
    triggers. A stream kept one 1 MB image per refused push that way: +10 MB in a 30 s
    out-of-memory episode (doc/reliability.md). Nobody reads the traceback of an error that was
    logged as text and retried, so it goes.
    """
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        current.__traceback__ = None
        current = current.__cause__ or current.__context__


class Backoff:
    """Exponential backoff with jitter for retry loops; logs once per outage.

    Thread-safe. Reads and writes may deserve one each: at ``maxmemory`` reads succeed while
    writes are refused, and a read's success would end the writers' outage at every try.
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
        ``exc`` loses its traceback (:func:`forget_traceback`).
        """
        with self._lock:
            if self.failures == 0:
                log.warning("%s: Redis unavailable (%s); retrying with backoff", self.name,
                            error_text(exc))
            self.failures += 1
            delay = min(self.cap, self.base * 2 ** min(self.failures - 1, 16))
        forget_traceback(exc)
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


def retry(call: Callable[[], T], backoff: Backoff, stop: threading.Event) -> T | None:
    """``call()`` until it returns, backing off through :data:`REDIS_DOWN_ERRORS`; None when
    ``stop`` is set first. Any other exception propagates."""
    while not stop.is_set():
        try:
            value = call()
        except REDIS_DOWN_ERRORS as exc:
            backoff.failed(exc, stop)
            continue
        backoff.succeeded()
        return value
    return None
