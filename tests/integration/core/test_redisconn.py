"""Which Redis errors the services retry (core.redisconn), against a real redis-server.

Each test has a server of its own: it is driven to ``maxmemory``, made a replica or told to
want replicas, which no other test should see.
"""

from __future__ import annotations

import gc
import threading
import weakref
from collections.abc import Iterator

import pytest
import redis

from elastic_inference.core.leased import LeasedQueue
from elastic_inference.core.queue import FrameQueue, push_to_types
from elastic_inference.core.redisconn import (
    REDIS_DOWN_ERRORS,
    Backoff,
    ReadOnlyReplicaError,
    RedisRefusedError,
    connect,
    error_text,
    retry,
)
from tests.redis_server import RedisServer, free_port

pytestmark = pytest.mark.integration


@pytest.fixture
def server() -> Iterator[RedisServer]:
    s = RedisServer().start()
    yield s
    s.stop()


def fill_to_maxmemory(client: redis.Redis) -> None:
    """Store 2 MB, then set ``maxmemory`` 1 MB below what is used (noeviction): every write
    that may grow memory is refused with OOM, as at a full production Redis."""
    client.set("ballast", b"x" * 2_000_000)
    used = int(client.info("memory")["used_memory"])
    client.config_set("maxmemory-policy", "noeviction")
    client.config_set("maxmemory", used - 1_000_000)


def refused(call: object) -> BaseException:
    assert callable(call)
    with pytest.raises(REDIS_DOWN_ERRORS) as info:
        call()
    return info.value


def test_writes_refused_at_maxmemory_are_retryable_in_every_form(server: RedisServer) -> None:
    client = connect(server.url)
    queue = FrameQueue(client, "face")
    jobs = LeasedQueue.for_type(client, "face")
    queue.push(b"frame-0")
    fill_to_maxmemory(client)

    def pipeline(transaction: bool) -> None:
        pipe = client.pipeline(transaction=transaction)
        pipe.get("ballast")
        pipe.xadd("ei:out:cam", {"frame": b"jpeg", "result": b"token=hunter2"})
        pipe.execute()

    errors = [
        refused(lambda: client.set("k", "v")),  # a plain command
        refused(lambda: pipeline(False)),  # a pipeline
        refused(lambda: pipeline(True)),  # MULTI/EXEC
        refused(lambda: queue.push(b"frame-1")),  # our Lua push: Redis 6 wraps the OOM
        refused(lambda: jobs.push([("job:1", b"frame")])),
    ]
    assert all(isinstance(e, redis.exceptions.OutOfMemoryError) for e in errors), errors
    # What the services log never carries a pipeline's command arguments.
    assert "hunter2" not in error_text(errors[1]) and "hunter2" in str(errors[1])
    assert error_text(errors[1]).startswith("OutOfMemoryError: ")
    # Reads and pops go on: a worker can still take frames while it cannot publish.
    assert queue.pop_nowait(4) == [b"frame-0"]
    assert client.strlen("ballast") == 2_000_000
    # Freed memory: the same client writes again.
    client.config_set("maxmemory", 0)
    assert queue.push(b"frame-2").length == 1


def test_failover_and_replication_refusals_are_retryable(server: RedisServer) -> None:
    client = connect(server.url, retries=1)
    client.config_set("min-replicas-to-write", 1)
    assert isinstance(refused(lambda: client.set("k", "v")), RedisRefusedError)  # NOREPLICAS
    client.config_set("min-replicas-to-write", 0)
    # A replica of a primary that is not there: READONLY, as the old primary after a failover.
    client.replicaof("127.0.0.1", free_port())
    try:
        error = refused(lambda: client.set("k", "v"))
        assert isinstance(error, ReadOnlyReplicaError)
        # A ConnectionError too, so redis-py reconnects before the loop's next try.
        assert isinstance(error, redis.ConnectionError)
    finally:
        client.replicaof("NO", "ONE")
    assert client.set("k", "v")


def test_bugs_and_bad_data_are_not_retried(server: RedisServer) -> None:
    client = connect(server.url)
    client.set("a-string", "x")
    for call in (lambda: client.lpush("a-string", 1),  # WRONGTYPE
                 lambda: client.eval("return redis.call('LPUSH', KEYS[1])", 1, "k"),  # Lua bug
                 lambda: client.execute_command("NOSUCHCOMMAND")):
        with pytest.raises(redis.ResponseError) as info:
            call()
        assert not isinstance(info.value, REDIS_DOWN_ERRORS), info.value


def test_retry_backs_off_through_a_refusal_and_stops_on_request(server: RedisServer) -> None:
    client = connect(server.url)
    fill_to_maxmemory(client)
    stop = threading.Event()
    backoff = Backoff("test", base=0.01, cap=0.05)
    tries: list[int] = []

    def write() -> str:
        tries.append(1)
        if len(tries) == 3:
            client.config_set("maxmemory", 0)  # memory freed between two tries
        client.set("k", "v")
        return "written"

    assert retry(write, backoff, stop) == "written"
    assert len(tries) == 3 and backoff.failures == 0
    stop.set()
    assert retry(write, backoff, stop) is None and len(tries) == 3
    client.set("a-string", "x")
    with pytest.raises(redis.ResponseError):  # a bug is not retried
        retry(lambda: client.lpush("a-string", 1), backoff, threading.Event())


class _Image:
    """Stands for a frame the caller holds while it pushes (weakly referenceable)."""


def test_a_refused_push_keeps_nothing_of_its_caller_alive(server: RedisServer) -> None:
    """redis-py's failed pipeline is a reference cycle that, through ``f_back``, held the
    caller's frame and its 1 MB image until the cyclic collector ran: a stream grew 10 MB in a
    30 s out-of-memory episode. After :meth:`Backoff.record_failure` it must be freed at once."""
    client = connect(server.url, retries=1)
    queues = [FrameQueue(client, "face")]
    push_to_types(queues, [b"frame-0"])  # the stream was pushing before Redis filled up
    admin = redis.Redis.from_url(server.url)
    admin.config_set("maxmemory-policy", "noeviction")
    admin.config_set("maxmemory", "1mb")  # far below what an empty server uses
    backoff = Backoff("test")

    def publish() -> weakref.ref[_Image]:
        image = _Image()
        try:
            push_to_types(queues, [b"x" * 100_000])
        except REDIS_DOWN_ERRORS as exc:
            backoff.record_failure(exc)
        return weakref.ref(image)

    gc.collect()
    gc.disable()
    try:
        refs = [publish() for _ in range(3)]
    finally:
        gc.enable()
    assert backoff.failures == 3
    assert [r() for r in refs] == [None, None, None]
    client.close()
