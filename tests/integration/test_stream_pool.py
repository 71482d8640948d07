"""``ei stream --pool`` as real processes against a real redis-server: sources written with the
store (and one added and deleted through the real gateway) go live on a replica, restart when
changed, stop when deleted or disabled; replicas share them, a cap bounds one, a killed
replica's sources move to the other and no source is ever read by two at once; bad settings;
a Redis restart."""

from __future__ import annotations

import itertools
import json
import signal
import subprocess
import sys
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest
import redis

from elastic_inference.core import keys
from elastic_inference.core.frame import decode
from elastic_inference.core.registry import StreamRegistry
from elastic_inference.core.sources import SourceConfig, SourceStore
from tests.gateway_app import GatewayThread
from tests.processes import Service, environment, http, wait_for
from tests.redis_server import RedisServer

pytestmark = pytest.mark.integration

LEASE = "2"  # seconds: short, so takeovers are quick


def source(sid: str, **kw: Any) -> SourceConfig:
    """vtest.avi at a low rate and size: little CPU per source."""
    base = SourceConfig(sid, "vtest.avi", ("people",), fps=4.0, max_width=160)
    return replace(base, **kw)


def pool(url: str, media: Path, replica: str, **env: str) -> Service:
    return Service(["stream", "--pool"], env={"EI_REDIS_URL": url, "EI_MEDIA_DIR": str(media),
                                              "EI_LEASE_SECONDS": LEASE,
                                              "EI_REPLICA_ID": replica, **env})


def entry(client: redis.Redis, sid: str) -> dict[str, Any] | None:
    """The source's registry entry (its details), if it heartbeats."""
    return next((m.info for m in StreamRegistry(client).members() if m.id == sid), None)


def holders(client: redis.Redis, sids: list[str]) -> dict[str, str | None]:
    raw = client.mget([keys.source_lease(s) for s in sids])
    return {s: None if v is None else v.decode() for s, v in zip(sids, raw, strict=True)}


def frames_of(client: redis.Redis, infer_type: str) -> list[tuple[str, int]]:
    """Pop every frame waiting in the type's queue: (stream, seq) in queue order."""
    raw = client.lpop(keys.queue(infer_type), 1000) or []
    return [(f.stream, f.seq) for f in map(decode, raw)]


@pytest.fixture
def media(sample_dir: Path) -> Path:
    return sample_dir


def test_a_source_goes_live_restarts_when_changed_and_stops_when_removed(
        redis_url: str, redis_client: redis.Redis, media: Path) -> None:
    store = SourceStore(redis_client)
    store.put(source("gate"))
    store.put(source("broken", source="missing.avi"))
    replica = pool(redis_url, media, "pool-a")
    try:
        live = wait_for(lambda: (e := entry(redis_client, "gate")) and e["state"] == "live"
                        and e, 30, "the source live")
        assert live["replica"] == "pool-a" and live["types"] == ["people"]
        assert live["w"] == 160
        wait_for(lambda: {s for s, _ in frames_of(redis_client, "people")} == {"gate"}, 10,
                 "its frames in the people queue")
        assert holders(redis_client, ["gate"]) == {"gate": "pool-a"}
        # A source it cannot use is shown failed, and the others go on.
        failed = wait_for(lambda: entry(redis_client, "broken"), 10, "the broken source shown")
        assert failed["state"] == "failed" and "missing.avi" in failed["error"]

        # Changed types and rate: restarted with them.
        store.put(source("gate", types=("car",), fps=2.0))
        wait_for(lambda: (e := entry(redis_client, "gate")) and e["types"] == ["car"]
                 and e["fps"] == 2.0, 10, "the source restarted with its new settings")
        wait_for(lambda: frames_of(redis_client, "car"), 10, "frames in the car queue")
        frames_of(redis_client, "people")
        time.sleep(1.0)
        assert frames_of(redis_client, "people") == []  # the old reader is gone

        def stops_within_5_s() -> None:
            wait_for(lambda: entry(redis_client, "gate") is None, 5, "the source stopped")
            assert holders(redis_client, ["gate"]) == {"gate": None}
            frames_of(redis_client, "car")
            time.sleep(1.5)
            assert frames_of(redis_client, "car") == []

        store.put(source("gate", types=("car",), enabled=False))
        stops_within_5_s()
        store.put(source("gate", types=("car",)))
        wait_for(lambda: (e := entry(redis_client, "gate")) and e["state"] == "live", 10,
                 "the source live again")
        store.delete("gate")
        stops_within_5_s()

        # SIGTERM: readers stopped, leases given back, the replica left the pool; exit 0.
        assert replica.stop() == 0
        assert redis_client.zcard(keys.stream_pool()) == 0
        assert holders(redis_client, ["broken"]) == {"broken": None}
        assert entry(redis_client, "broken") is None
    finally:
        replica.stop(timeout=10, sig=signal.SIGKILL)


@dataclass
class Watch:
    """Samples, every 50 ms, who holds each source's lease, which replica its heartbeat names,
    and the (stream, seq) of every frame pushed (popped from the queue)."""

    client: redis.Redis
    sids: list[str]
    holder_changes: dict[str, list[str | None]] = field(default_factory=lambda: defaultdict(list))
    beat_replicas: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    seqs: dict[str, list[int]] = field(default_factory=lambda: defaultdict(list))
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        while not self.stop.wait(0.05):
            for sid, holder in holders(self.client, self.sids).items():
                changes = self.holder_changes[sid]
                if holder is not None and (not changes or changes[-1] != holder):
                    changes.append(holder)
            for sid in self.sids:
                info = self.client.hget(keys.stream_info(sid), "replica")
                seen = self.beat_replicas[sid]
                name = None if info is None else json.loads(info)
                if name is not None and (not seen or seen[-1] != name):
                    seen.append(name)
            for sid, seq in frames_of(self.client, "people"):
                self.seqs[sid].append(seq)

    @staticmethod
    def restarts(seqs: list[int]) -> int:
        """Times the seq went back: a new reader (it counts from 0). Two readers at once
        would interleave their counts and go back again and again."""
        return sum(1 for a, b in itertools.pairwise(seqs) if b <= a)


def test_replicas_share_sources_and_take_over_a_killed_one_never_two_at_once(
        redis_url: str, redis_client: redis.Redis, media: Path) -> None:
    sids = ["s1", "s2", "s3", "s4"]
    store = SourceStore(redis_client)
    for sid in sids:
        store.put(source(sid))
    a = pool(redis_url, media, "pool-a", EI_MAX_SOURCES="3")
    b: Service | None = None
    try:
        # Alone, a takes its cap and no more.
        wait_for(lambda: list(holders(redis_client, sids).values()).count("pool-a") == 3, 30,
                 "pool-a holding 3 sources (its EI_MAX_SOURCES)")
        time.sleep(2.5)
        assert list(holders(redis_client, sids).values()).count(None) == 1
        b = pool(redis_url, media, "pool-b")
        wait_for(lambda: sorted(map(str, holders(redis_client, sids).values()))
                 == ["pool-a", "pool-a", "pool-b", "pool-b"], 30, "a 2/2 share")
        wait_for(lambda: all((e := entry(redis_client, s)) and e["state"] == "live"
                             for s in sids), 15, "every source live")
        frames_of(redis_client, "people")

        watch = Watch(redis_client, sids)
        sampler = threading.Thread(target=watch.run, daemon=True)
        sampler.start()
        time.sleep(1.0)
        # a pauses past its leases (as under a stalled VM or a Redis it cannot reach): b
        # takes its sources; when a resumes, its readers have stopped by themselves and
        # send nothing, and the two share again.
        a.proc.send_signal(signal.SIGSTOP)
        try:
            wait_for(lambda: set(holders(redis_client, sids).values()) == {"pool-b"}, 15,
                     "pool-b holding every source while pool-a is paused")
        finally:
            a.proc.send_signal(signal.SIGCONT)
        wait_for(lambda: sorted(map(str, holders(redis_client, sids).values()))
                 == ["pool-a", "pool-a", "pool-b", "pool-b"], 30, "a 2/2 share again")
        wait_for(lambda: all((e := entry(redis_client, s)) and e["state"] == "live"
                             for s in sids), 15, "every source live")
        time.sleep(1.0)
        killed = time.monotonic()
        a.proc.send_signal(signal.SIGKILL)
        a.proc.wait(10)
        wait_for(lambda: all((e := entry(redis_client, s)) and e["state"] == "live"
                             and e["replica"] == "pool-b" for s in sids)
                 and set(holders(redis_client, sids).values()) == {"pool-b"}, 10,
                 "every source live on pool-b")
        takeover = time.monotonic() - killed
        time.sleep(1.0)
        watch.stop.set()
        sampler.join(5)
        for sid in sids:
            moved = len(watch.holder_changes[sid]) - 1
            assert watch.holder_changes[sid][-1] == "pool-b", sid
            assert watch.beat_replicas[sid] == watch.holder_changes[sid], sid
            assert len(watch.seqs[sid]) >= 3, (sid, watch.seqs[sid])
            # Each new holder counts from 0 once; two at once would interleave their counts.
            assert Watch.restarts(watch.seqs[sid]) <= moved, (sid, watch.holder_changes[sid],
                                                              watch.seqs[sid])
        print(f"takeover of 2 sources after SIGKILL: {takeover:.1f} s (lease {LEASE} s)")
    finally:
        a.stop(timeout=10, sig=signal.SIGKILL)
        if b is not None:
            assert b.stop() == 0


@pytest.mark.parametrize(("args", "env", "named"), [
    (["--pool"], {"EI_SOURCE": "vtest.avi"}, "EI_SOURCE"),
    (["--pool", "--fps", "3"], {}, "--fps"),
    ([], {"EI_POOL": "true", "EI_TYPES": "people"}, "EI_TYPES"),
    (["--pool", "--lease-seconds", "1"], {}, "--lease-seconds"),
])
def test_bad_pool_settings_are_refused_naming_the_variable(args: list[str], env: dict[str, str],
                                                           named: str) -> None:
    proc = subprocess.run([sys.executable, "-m", "elastic_inference.cli", "stream", *args],
                          env=environment(**env), capture_output=True, text=True, timeout=60,
                          check=False)
    assert proc.returncode == 2, proc.stderr
    assert named in proc.stderr


def test_the_pool_comes_back_after_a_redis_restart(media: Path) -> None:
    server = RedisServer(config=("--appendonly", "yes", "--appendfsync", "always")).start()
    client = redis.Redis.from_url(server.url)
    replica = pool(server.url, media, "pool-a")
    try:
        SourceStore(client).put(source("gate"))
        wait_for(lambda: (e := entry(client, "gate")) and e["state"] == "live", 30,
                 "the source live")
        server.restart(down_for=3.0)  # longer than the lease: the reader stops by itself
        frames_of(client, "people")
        wait_for(lambda: (e := entry(client, "gate")) and e["state"] == "live"
                 and frames_of(client, "people"), 30, "the source live again with new frames")
        assert holders(client, ["gate"]) == {"gate": "pool-a"}
        assert "reader stopped (lease not renewed in time)" in replica.output()
        assert replica.alive()
    finally:
        replica.stop(timeout=10, sig=signal.SIGKILL)
        client.close()
        server.stop()


def test_a_camera_added_through_the_api_goes_live_and_stops_within_5_s_of_its_delete(
        redis_url: str, redis_client: redis.Redis, media: Path) -> None:
    """The acceptance path end to end: POST /api/sources on the real gateway, a real pool
    replica reads it, DELETE stops the reading within 5 s."""
    gateway = GatewayThread(redis_url, media_dir=media)
    replica = pool(redis_url, media, "pool-a")
    api = f"{gateway.url}/api/sources"
    headers = {"Content-Type": "application/json", **gateway.auth}
    try:
        body = {"id": "lobby", "source": "vtest.avi", "types": ["people"], "fps": 4,
                "max_width": 160}
        code, _, answer = http(api, "POST", json.dumps(body).encode(), headers)
        assert code == 201, answer

        def state() -> dict[str, Any]:
            code, _, raw = http(f"{api}/lobby", headers=gateway.auth)
            assert code == 200, raw
            return dict(json.loads(raw)["state"])

        live = wait_for(lambda: (s := state())["state"] == "live" and s, 30, "the camera live")
        assert live["replica"] == "pool-a"
        wait_for(lambda: {s for s, _ in frames_of(redis_client, "people")} == {"lobby"}, 10,
                 "its frames in the people queue")

        code, _, answer = http(f"{api}/lobby", "DELETE", None, gateway.auth)
        assert code == 204, answer
        deleted = time.monotonic()
        wait_for(lambda: entry(redis_client, "lobby") is None, 5, "the reader stopped")
        frames_of(redis_client, "people")
        time.sleep(1.0)
        assert frames_of(redis_client, "people") == []
        assert time.monotonic() - deleted < 6.5
        assert http(f"{api}/lobby", headers=gateway.auth)[0] == 404
    finally:
        replica.stop(timeout=10, sig=signal.SIGKILL)
        gateway.stop()
