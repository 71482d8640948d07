"""The services on a real Redis Cluster (three masters, tests/redis_cluster.py): ``ei stream``,
``ei infer``, ``ei track``, ``ei analysis``, ``ei gateway`` and ``ei websocket`` given a
``redis+cluster://`` URL: live results in the broker and through the websocket, an analysis
job end to end through the API, /api/streams and /api/sources, and every key the run wrote in
the hash slot its multi-key operations need (doc/scaling.md, "Redis Cluster"); once without
users, once with core/acl.py's users on every node."""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from redis.cluster import RedisCluster
from websockets.sync.client import connect as ws_connect

from elastic_inference.core import acl, keys
from elastic_inference.core.auth import Role
from elastic_inference.core.broker import OutputBroker, TracksEntry
from elastic_inference.core.jobs import JobStore
from elastic_inference.core.live import decode_frame
from elastic_inference.core.queue import FrameQueue
from elastic_inference.core.redisconn import connect
from elastic_inference.core.result import parse_result
from tests.credentials import SECRET_ENV, bearer
from tests.processes import Service, http, wait_for
from tests.redis_cluster import RedisClusterServers
from tests.redis_server import free_port

pytestmark = pytest.mark.integration

STREAM = "cluster-cam"
FRAME_STEP = 200  # vtest.avi's 795 frames: 0, 200, 400, 600


#: Each component's password on the nodes of the "acl" cluster.
PASSWORDS = {c.component: secrets.token_urlsafe(24) for c in acl.COMPONENTS}


@pytest.fixture(scope="module", params=["open", "acl"])
def cluster(request: pytest.FixtureRequest) -> Iterator[RedisClusterServers]:
    """A cluster without users, and one whose every node has core/acl.py's users (and no
    default user): the services then log in as their own component."""
    users = acl.aclfile(PASSWORDS) if request.param == "acl" else ""
    servers = RedisClusterServers(aclfile=users, root_password=secrets.token_urlsafe(24))
    servers.start()
    try:
        yield servers
    finally:
        servers.stop()


def url_of(cluster: RedisClusterServers, component: str) -> str:
    """The URL a service of ``component`` is given."""
    if not cluster.aclfile:
        return cluster.url
    return acl.url(cluster.url, component, PASSWORDS[component])


def slot(client: RedisCluster, key: str) -> int:
    """The slot the server itself gives ``key`` (CLUSTER KEYSLOT)."""
    return int(client.cluster_keyslot(key))


def get_json(base: str, path: str, auth: dict[str, str]) -> tuple[int, Any]:
    code, _, raw = http(base + path, headers=auth)
    return code, json.loads(raw)


def test_the_services_work_on_a_redis_cluster(cluster: RedisClusterServers, model_dir: Path,
                                              sample_dir: Path) -> None:
    client = connect(cluster.root_url)
    assert isinstance(client, RedisCluster)
    port, ws_port = free_port(), free_port()

    def env(component: str) -> dict[str, str]:
        return {"EI_REDIS_URL": url_of(cluster, component)}

    services = [
        Service(["infer", "--type", "people", "--model-dir", str(model_dir),
                 "--lease-timeout", "5"], env=env("infer")),
        Service(["stream", "--source", str(sample_dir / "vtest.avi"), "--stream-id", STREAM,
                 "--types", "people", "--fps", "4", "--max-width", "320"], env=env("stream")),
        Service(["analysis", "--media-dir", str(sample_dir)], env=env("analysis")),
        Service(["track", "--replica-id", "t1", "--track-lease", "3", "--claim-interval", "1"],
                env=env("track")),
        Service(["gateway", "--host", "127.0.0.1", "--port", str(port), "--media-dir",
                 str(sample_dir)], env={**env("gateway"), **SECRET_ENV}),
        Service(["websocket", "--host", "127.0.0.1", "--port", str(ws_port)],
                env={**env("websocket"), **SECRET_ENV}),
    ]
    try:
        base = f"http://127.0.0.1:{port}"
        auth = bearer(client, Role.OPERATOR)
        wait_for(lambda: http(base + "/readyz")[0] == 200, 30, "ei gateway to become ready")

        # Live: frames through the queue to the worker, results in the broker, read back the
        # way the websocket service and ei track read them (one read over several streams).
        broker = OutputBroker(client)
        latest = wait_for(lambda: broker.latest(STREAM), 60, "a live result of the stream")
        parsed = parse_result(latest[0].result)
        assert parsed is not None and parsed[1]["stream"] == STREAM, latest[0].result[:200]
        assert broker.attach_frames(latest)[0].jpeg.startswith(b"\xff\xd8")  # stored once
        started = time.monotonic()
        read = wait_for(lambda: broker.read({STREAM: "$", "no-such-stream": "$"},
                                            block_ms=5000), 30, "entries read after $")
        assert {e.stream for e in read} == {STREAM}
        assert time.monotonic() - started < 30
        assert broker.history(STREAM, 0, time.time() + 1)
        # ei track leases the stream (its lease scripts go through a cluster pipeline) and
        # writes its tracks, read back beside the live output as the websocket service does.
        wait_for(lambda: client.get(keys.track_lease(STREAM)) == b"t1", 30, "ei track's lease")
        tracks = wait_for(lambda: [e for e in broker.read_live({STREAM: "$"}, {STREAM: "$"},
                                                                 block_ms=2000)
                                   if isinstance(e, TracksEntry)], 30, "live tracks")
        assert {e.stream for e in tracks} == {STREAM}
        assert STREAM in live_frames(services[-1], ws_port, bearer(client, Role.VIEWER))

        # The gateway: streams and sources (the registry and the sources hash).
        code, streams = get_json(base, "/api/streams", auth)
        assert code == 200 and STREAM in json.dumps(streams), streams
        source = {"id": STREAM, "source": "vtest.avi", "types": ["people"]}
        code, _, raw = http(base + "/api/sources", "POST", json.dumps(source).encode(),
                            {**auth, "Content-Type": "application/json"})
        assert code == 201, raw[:300]
        code, listed = get_json(base, "/api/sources", auth)
        assert code == 200 and [s["id"] for s in listed["sources"]] == [STREAM], listed

        # An analysis job end to end: the API queues it, the runner stores frames and queues
        # them for the worker, whose results the job's scripts store.
        job = {"source": "vtest.avi", "types": ["people"], "frame_step": FRAME_STEP}
        code, _, raw = http(base + "/api/analysis", "POST", json.dumps(job).encode(),
                            {**auth, "Content-Type": "application/json"})
        assert code == 201, raw[:300]
        job_id = json.loads(raw)["id"]

        def done() -> dict[str, Any] | None:
            code, found = get_json(base, f"/api/analysis/{job_id}", auth)
            assert code == 200 and found["status"] != "failed", found
            return found if found["status"] == "done" else None

        finished = wait_for(done, 90, "the analysis job to finish")
        assert finished["frames_done"] == finished["frames_total"] == 4, finished
        code, page = get_json(base, f"/api/analysis/{job_id}/results?limit=10", auth)
        assert code == 200 and [f["frame"] for f in page["frames"]] == [0, 200, 400, 600]

        check_slots(client, job_id)

        # Deleting the job removes its keys (one slot) and its index entry (another).
        assert JobStore(client).delete(job_id)
        assert not list(client.scan_iter(match=f"*{job_id}*"))
        for service in services:
            assert service.alive(), service.output()[-3000:]
        if cluster.aclfile:  # every component's user was allowed all it did, on every node
            assert cluster.acl_log() == []
    finally:
        for service in services:
            service.stop()
        client.close()


def live_frames(service: Service, port: int, auth: dict[str, str]) -> set[str]:
    """The streams of the frames ``ei websocket`` sends a viewer within a few seconds."""
    ready = f"http://127.0.0.1:{service.metrics_port}/readyz"
    wait_for(lambda: http(ready)[0] == 200, 30, "ei websocket to become ready")
    seen: set[str] = set()
    with ws_connect(f"ws://127.0.0.1:{port}/ws", additional_headers=auth) as ws:
        deadline = time.monotonic() + 20
        while not seen and time.monotonic() < deadline:
            msg = ws.recv(timeout=max(0.01, deadline - time.monotonic()))
            if isinstance(msg, bytes):
                header, jpeg = decode_frame(msg)
                assert jpeg.startswith(b"\xff\xd8")
                seen.add(header["stream"])
    return seen


def check_slots(client: RedisCluster, job_id: str) -> None:
    """Every group of keys one script or transaction uses together exists after the run and
    lives in one hash slot, by the server's own CLUSTER KEYSLOT."""
    written = {k if isinstance(k, str) else k.decode() for k in client.scan_iter(count=1000)}
    groups = {
        "live queue and its counters": [keys.queue("people"), keys.queue_stats("people")],
        "job record, frames, results, tracks": [
            keys.job(job_id), keys.job_frames(job_id), keys.job_results(job_id, "people")],
        "a type's job queue": [keys.job_queue("people"), keys.job_queue_messages("people"),
                               keys.job_queue_leases("people")],
        "pending jobs": [keys.jobs_pending(), keys.jobs_pending_messages(),
                         keys.jobs_pending_leases()],
        "users, tokens, sessions": sorted(k for k in written if k.startswith("ei:{auth}:")),
    }
    # Queues the work emptied are gone; the record, the frames and the results are there.
    for must in (keys.queue_stats("people"), keys.job(job_id), keys.job_frames(job_id),
                 keys.job_results(job_id, "people")):
        assert must in written, (must, sorted(written))
    assert len(groups["users, tokens, sessions"]) >= 2, sorted(written)
    for what, names in groups.items():
        slots = {slot(client, k) for k in names}
        assert len(slots) == 1, (what, {k: slot(client, k) for k in names})
    # Keys outside the groups stay spread: the streams' buffers are not all in one slot.
    spread = {slot(client, k) for k in (keys.out(STREAM), keys.results(STREAM),
                                        keys.stream_info(STREAM), keys.jobs())}
    assert len(spread) > 1


def test_the_services_ride_through_a_node_crash(model_dir: Path, sample_dir: Path) -> None:
    """The node holding the live queue is killed and started again: ``ei stream`` and ``ei
    infer`` back off while the cluster is down (CLUSTERDOWN, refused connections) and carry on
    once it has healed, without a restart."""
    cluster = RedisClusterServers().start()
    client = connect(cluster.url)
    env = {"EI_REDIS_URL": cluster.url}
    services = [
        Service(["infer", "--type", "people", "--model-dir", str(model_dir)], env=env),
        Service(["stream", "--source", str(sample_dir / "vtest.avi"), "--stream-id", STREAM,
                 "--types", "people", "--fps", "4", "--max-width", "320"], env=env),
    ]
    try:
        assert isinstance(client, RedisCluster)
        broker = OutputBroker(client)
        wait_for(lambda: broker.latest(STREAM), 60, "a live result before the crash")
        port = client.get_node_from_key(keys.queue("people")).port
        cluster.kill(cluster.ports.index(port))
        time.sleep(5)  # past the node timeout (2 s): the cluster reports itself down
        for service in services:
            assert service.alive(), service.output()[-3000:]
        cluster.revive(cluster.ports.index(port))
        # The node took the frame store with it (no persistence): a frame the worker popped
        # before the crash is published after it without its JPEG, so wait for one with.
        after = wait_for(lambda: [e for e in broker.attach_frames(
            broker.read({STREAM: "$"}, block_ms=2000)) if e.jpeg], 60,
            "live results with their frames after the node came back")
        assert after[0].jpeg.startswith(b"\xff\xd8")
        for service in services:
            assert service.alive(), service.output()[-3000:]
        assert "Redis unavailable" in services[1].output()
        # Logged by the stream once a push succeeds again; its output reaches us a little
        # after the results it made possible.
        wait_for(lambda: "Redis reachable again" in services[1].output(), 15,
                 "the stream to log its recovery")
    finally:
        for service in services:
            service.stop()
        client.close()
        cluster.stop()


def test_a_service_started_before_the_cluster_waits_for_it(sample_dir: Path) -> None:
    """The cluster client asks for the slots as it is built: ``ei stream`` started while no
    node answers backs off (not a crash) and streams once the cluster is up."""
    cluster = RedisClusterServers()
    stream = Service(["stream", "--source", str(sample_dir / "vtest.avi"), "--stream-id",
                      STREAM, "--types", "people", "--fps", "4", "--max-width", "320"],
                     env={"EI_REDIS_URL": cluster.url})
    client = None
    try:
        wait_for(lambda: "Redis unavailable" in stream.output(), 30, "the stream to back off")
        time.sleep(1)
        assert stream.alive(), stream.output()[-3000:]
        cluster.start()
        client = connect(cluster.url)
        wait_for(lambda: FrameQueue(client, "people").stats().pushed > 0, 60,
                 "frames pushed once the cluster is up")
        assert stream.alive(), stream.output()[-3000:]
    finally:
        stream.stop()
        if client is not None:
            client.close()
        cluster.stop()
