"""``ei stream`` as a process against a real redis-server: its registry entry, SIGTERM and
SIGKILL, a Redis restart, sources that do not open, bad settings, a live HTTP camera that dies
or stays down. In process (queues, corrupt frames, outages): test_stream.py.
"""

from __future__ import annotations

import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

from elastic_inference.core import keys
from elastic_inference.core.frame import decode
from elastic_inference.core.registry import StreamRegistry
from tests.mjpeg_camera import MjpegCamera
from tests.processes import wait_for
from tests.redis_server import RedisServer, free_port
from tests.stream_process import TYPES, StreamProcess, clean_env, metric, registry_entry

pytestmark = pytest.mark.integration


@pytest.fixture
def spawn(tmp_path: Path) -> Iterator[Callable[..., StreamProcess]]:
    started: list[StreamProcess] = []

    def start(*args: str, **env: str) -> StreamProcess:
        p = StreamProcess(tmp_path / f"stream-{len(started)}.log", list(args), clean_env(**env))
        started.append(p)
        return p

    yield start
    for p in started:
        p.kill()


# ----------------------------------------------------------------------------- as a process


def test_registry_while_running_then_sigterm_exits_0_and_unregisters(
        spawn: Callable[..., StreamProcess], redis_url: str, redis_client: redis.Redis,
        clip: Path) -> None:
    port = free_port()
    p = spawn("--source", str(clip), "--types", "face,people", "--fps", "40",
              "--queue-maxlen", "4", EI_REDIS_URL=redis_url, EI_METRICS_PORT=str(port))
    info = wait_for(lambda: (e := registry_entry(redis_client, "moving-shapes")) and
                    e["frames"] > 20 and e, 15, "the stream in the registry with frames")
    assert info["types"] == ["face", "people"]
    assert info["source_kind"] == "file"
    assert (info["source"], info["state"]) == ("moving shapes.avi", "live")
    assert (info["w"], info["h"], info["fps"]) == (320, 240, 40.0)
    for t in TYPES:
        assert redis_client.llen(keys.queue(t)) <= 4
        assert int(redis_client.hget(keys.queue_stats(t), "overflow") or 0) > 0
    overflow = metric(port, 'ei_stream_overflow_drops_total{stream="moving-shapes",type="face"}')
    assert overflow is not None and overflow > 0
    assert urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=5).status == 200
    assert p.running()

    assert p.terminate() == 0
    assert registry_entry(redis_client, "moving-shapes") is None
    assert "SIGTERM received" in p.log


def test_a_killed_stream_leaves_the_registry_within_a_few_seconds(
        spawn: Callable[..., StreamProcess], redis_url: str, redis_client: redis.Redis,
        clip: Path) -> None:
    p = spawn("--source", str(clip), "--stream-id", "doomed", EI_REDIS_URL=redis_url)
    wait_for(lambda: registry_entry(redis_client, "doomed"), 15, "the stream to register")
    p.kill()  # SIGKILL: no cleanup runs, so only the heartbeat TTL removes it
    # A deadline for the expiry to happen at all, not a measure of how soon: readers drop an
    # entry whose heartbeat is older than the TTL (5 s), whatever the machine's speed.
    registry = StreamRegistry(redis_client)
    wait_for(lambda: "doomed" not in registry.ids(), registry.ttl + 10, "the entry to expire")


def test_survives_a_redis_restart(spawn: Callable[..., StreamProcess], clip: Path) -> None:
    server = RedisServer().start()  # our own server: restarting it disturbs no other test
    try:
        client = redis.Redis.from_url(server.url)
        port = free_port()
        p = spawn("--source", str(clip), "--types", "face,people", "--fps", "30",
                  EI_REDIS_URL=server.url, EI_METRICS_PORT=str(port))
        wait_for(lambda: client.hget(keys.queue_stats("face"), "pushed"), 15, "first frames")

        server.restart(down_for=1.0)  # a fresh, empty Redis on the same port
        client = redis.Redis.from_url(server.url)
        assert p.running()
        wait_for(lambda: int(client.hget(keys.queue_stats("people"), "pushed") or 0) >= 5, 15,
                 "frames to resume after the restart")
        wait_for(lambda: registry_entry(client, "moving-shapes"), 5, "the stream to re-register")
        frame = decode(client.lindex(keys.queue("face"), -1))
        assert frame.stream == "moving-shapes"
        assert metric(port, 'ei_redis_reconnects_total{component="stream"}') == 1
        assert p.running()
        assert p.terminate() == 0
        assert "Redis unavailable" in p.log and "reachable again" in p.log
        assert "Traceback" not in p.log
        client.close()
    finally:
        server.stop()


@pytest.mark.parametrize(("source", "stream_id", "kind", "public"), [
    ("9", "cam9", "webcam", "9"),
    ("rtsp://admin:s3cret@127.0.0.1:1/live?token=t0ken", "127.0.0.1-1-live", "url",
     "rtsp://admin:***@127.0.0.1:1/live?token=***"),
])
def test_a_live_source_that_does_not_open_keeps_retrying(
        spawn: Callable[..., StreamProcess], redis_url: str, redis_client: redis.Redis,
        source: str, stream_id: str, kind: str, public: str) -> None:
    p = spawn("--source", source, EI_REDIS_URL=redis_url)
    info = wait_for(lambda: registry_entry(redis_client, stream_id), 15, "a registry entry")
    assert (info["state"], info["source_kind"], info["source"]) == ("retrying", kind, public)
    # At least two reopen attempts (after 0.5 s, then 1 s), however long each takes to fail.
    info = wait_for(lambda: (e := registry_entry(redis_client, stream_id)) and
                    e["errors"] >= 2 and e, 20, "a second failed open")
    assert p.running() and info["state"] == "retrying"
    assert p.terminate() == 0
    assert "reopening in" in p.log
    assert "s3cret" not in p.log and "t0ken" not in p.log
    assert registry_entry(redis_client, stream_id) is None


@pytest.mark.parametrize(("env", "args", "named"), [
    ({"EI_FPS": "-1"}, [], "EI_FPS"),
    ({"EI_FPZ": "10"}, [], "EI_FPZ"),
    ({}, ["--queue-maxlen", "0"], "--queue-maxlen"),
    ({}, [], "EI_SOURCE"),
])
def test_bad_settings_exit_2_naming_the_variable(
        spawn: Callable[..., StreamProcess], clip: Path, env: dict[str, str], args: list[str],
        named: str) -> None:
    source = [] if named == "EI_SOURCE" else ["--source", str(clip)]
    p = spawn(*source, *args, EI_REDIS_URL="redis://127.0.0.1:1/0", **env)
    assert p.proc.wait(timeout=30) == 2
    assert named in p.log and "configuration error" in p.log


def test_a_missing_file_exits_1_with_a_message(spawn: Callable[..., StreamProcess],
                                                redis_url: str, tmp_path: Path) -> None:
    p = spawn("--source", str(tmp_path / "nope.avi"), EI_REDIS_URL=redis_url)
    assert p.proc.wait(timeout=30) == 1
    assert "cannot open video file" in p.log and "nope.avi" in p.log


# ----------------------------------------------------------------------------- a live HTTP camera


def test_an_http_camera_that_dies_mid_stream_is_retried_and_resumes(
        spawn: Callable[..., StreamProcess], redis_url: str, redis_client: redis.Redis,
        clip: Path) -> None:
    camera = MjpegCamera(clip)
    camera.start()
    port = free_port()
    p = spawn("--source", camera.url, "--stream-id", "cam", "--types", "people",
              EI_REDIS_URL=redis_url, EI_METRICS_PORT=str(port))
    try:
        stats = keys.queue_stats("people")
        wait_for(lambda: int(redis_client.hget(stats, "pushed") or 0) >= 10, 20,
                 "frames from the camera")
        assert registry_entry(redis_client, "cam")["state"] == "live"  # type: ignore[index]
        assert metric(port, 'ei_stream_state{state="live",stream="cam"}') == 1

        camera.stop()
        wait_for(lambda: (registry_entry(redis_client, "cam") or {}).get("state") == "retrying",
                 20, "the stream to show the camera as retrying")
        assert metric(port, 'ei_stream_state{state="retrying",stream="cam"}') == 1
        before = int(redis_client.hget(stats, "pushed") or 0)

        camera.start()
        wait_for(lambda: (registry_entry(redis_client, "cam") or {}).get("state") == "live",
                 30, "the stream to be live again")
        wait_for(lambda: int(redis_client.hget(stats, "pushed") or 0) >= before + 10, 20,
                 "frames to resume")
        info = registry_entry(redis_client, "cam")
        assert info is not None and info["reconnects"] == 1 and info["errors"] >= 1
        assert metric(port, 'ei_stream_source_reconnects_total{stream="cam"}') == 1
        assert p.running()
        assert p.terminate() == 0
        assert "live -> retrying" in p.log and "retrying -> live" in p.log
    finally:
        camera.stop()


def test_a_source_that_stays_down_is_shown_as_failed_after_max_retries(
        spawn: Callable[..., StreamProcess], redis_url: str, redis_client: redis.Redis) -> None:
    port = free_port()
    p = spawn("--source", f"http://127.0.0.1:{free_port()}/none.mjpg", "--stream-id", "gone",
              "--max-retries", "2", EI_REDIS_URL=redis_url, EI_METRICS_PORT=str(port))
    # Tries: the first open, then reopens after 0.5 s and 1 s; the third failure gives up.
    info = wait_for(lambda: (registry_entry(redis_client, "gone") or {}).get("state") == "failed"
                    and registry_entry(redis_client, "gone"), 20, "the failed state")
    assert info["errors"] == 3
    assert metric(port, 'ei_stream_state{state="failed",stream="gone"}') == 1
    time.sleep(1.5)
    assert p.running() and (registry_entry(redis_client, "gone") or {})["errors"] == 3
    assert p.terminate() == 0
    assert "giving up after 2 tries (EI_MAX_RETRIES)" in p.log
