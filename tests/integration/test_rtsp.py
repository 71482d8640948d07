"""``ei stream`` reading a real RTSP camera (GStreamer's RTSP server, H.264 over TCP, digest
authentication), alone and as a managed source of ``ei stream --pool``: live, cut, back, silent,
wrong password, and the password never shown."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from elastic_inference.core import keys
from elastic_inference.core.frame import decode
from elastic_inference.core.redact import redact_url
from elastic_inference.core.registry import StreamRegistry
from elastic_inference.core.sources import SourceConfig, SourceStore
from tests.processes import Service, http, wait_for
from tests.rtsp_server import HEIGHT, WIDTH, RtspServer

pytestmark = pytest.mark.integration

USER = "cam-viewer-4182"
PASSWORD = "Rtsp-s3cret-77/91"  # a '/' (percent-encoded in the URL) on purpose


@pytest.fixture
def camera(sample_dir: Path) -> Iterator[RtspServer]:
    server = RtspServer(sample_dir / "vtest.avi", user=USER, password=PASSWORD)
    server.start()
    yield server
    server.close()


def state(client: redis.Redis, stream_id: str) -> dict[str, Any]:
    for member in StreamRegistry(client).members():
        if member.id == stream_id:
            return member.info
    return {}


def metrics(service: Service) -> str:
    return http(f"http://127.0.0.1:{service.metrics_port}/metrics")[2].decode()


def metric(service: Service, line_start: str) -> float | None:
    for line in metrics(service).splitlines():
        if line.startswith(line_start):
            return float(line.rsplit(" ", 1)[1])
    return None


def pushed(client: redis.Redis) -> int:
    return int(client.hget(keys.queue_stats("people"), "pushed") or 0)


def assert_no_secret(text: str, public: str) -> None:
    """The password, raw or percent-encoded, is absent; the source is shown, and the user only
    in ``public``, its redacted form."""
    for secret in (PASSWORD, PASSWORD.replace("/", "%2F"), "s3cret"):
        assert secret not in text
    assert public in text and text.count(USER) == text.count(public)


def stream(redis_url: str, source: str, stream_id: str, **env: str) -> Service:
    # EI_SOURCE, not --source: a URL with a password has no place on a command line (ps).
    return Service(["stream", "--stream-id", stream_id, "--types", "people"],
                   env={"EI_REDIS_URL": redis_url, "EI_SOURCE": source, "EI_LOG_LEVEL": "DEBUG",
                        **env})


def cut_and_restore(camera: RtspServer, client: redis.Redis, p: Service,
                    stream_id: str) -> dict[str, Any]:
    """Kill the camera: the stream shows it retrying; start it again on the same port: live
    again, frames resume, one reconnect counted. Its registry details at the end."""
    camera.stop()
    wait_for(lambda: state(client, stream_id).get("state") == "retrying", 20,
             "the stream to show the camera as retrying")
    assert metric(p, f'ei_stream_state{{state="retrying",stream="{stream_id}"}}') == 1
    before = pushed(client)
    camera.start()
    wait_for(lambda: state(client, stream_id).get("state") == "live", 30,
             "the stream to be live again")
    wait_for(lambda: pushed(client) >= before + 5, 20, "frames to resume")
    info = state(client, stream_id)
    assert info["reconnects"] == 1 and info["errors"] >= 1
    assert metric(p, f'ei_stream_source_reconnects_total{{stream="{stream_id}"}}') == 1
    return info


def test_an_rtsp_camera_goes_live_is_retried_when_cut_and_resumes_on_restart(
        camera: RtspServer, redis_url: str, redis_client: redis.Redis) -> None:
    public = f"rtsp://{USER}:***@127.0.0.1:{camera.port}/cam/main"
    assert redact_url(camera.url) == public
    p = stream(redis_url, camera.url, "gate")
    try:
        wait_for(lambda: pushed(redis_client) >= 10, 30, "frames from the RTSP camera")
        frame = decode(redis_client.lindex(keys.queue("people"), -1))
        assert (frame.stream, frame.w, frame.h) == ("gate", WIDTH, HEIGHT)
        info = state(redis_client, "gate")
        assert (info["state"], info["source_kind"], info["source"]) == ("live", "url", public)
        assert metric(p, 'ei_stream_state{state="live",stream="gate"}') == 1

        cut_and_restore(camera, redis_client, p, "gate")
        raw = redis_client.hgetall(keys.stream_info("gate"))
        assert_no_secret(repr(raw) + metrics(p), public)
        assert p.alive()
        assert p.stop() == 0
        assert "live -> retrying" in p.output() and "retrying -> live" in p.output()
        assert_no_secret(p.output(), public)
    finally:
        p.stop()


def test_wrong_credentials_never_go_live_and_are_not_logged(
        camera: RtspServer, redis_url: str, redis_client: redis.Redis) -> None:
    wrong = camera.url_with(USER, "Wrong-pa55word-3310")
    p = stream(redis_url, wrong, "locked")
    try:
        # The first open and two reopens (after 0.5 s and 1 s) are refused with 401.
        info = wait_for(lambda: (s := state(redis_client, "locked")).get("errors", 0) >= 3 and s,
                        30, "three refused opens")
        assert info["state"] == "retrying" and info["frames"] == 0
        assert metric(p, 'ei_stream_state{state="retrying",stream="locked"}') == 1
        assert metric(p, 'ei_stream_state{state="live",stream="locked"}') == 0
        assert pushed(redis_client) == 0
        assert p.stop() == 0
        log = p.output()
        assert "reopening in" in log
        assert "Wrong-pa55word" not in log
        assert_no_secret(log, f"rtsp://{USER}:***@127.0.0.1:{camera.port}/cam/main")
    finally:
        p.stop()


def test_a_camera_that_goes_silent_is_reopened_after_the_read_timeouts(
        camera: RtspServer, redis_url: str, redis_client: redis.Redis) -> None:
    """No close, no data (a cut cable): only FFmpeg's read timeout notices. With the default
    5 s, 25 s measured to retrying: FFmpeg absorbs the first timeouts, then 3 failed reads of
    5 s each; here EI_SOURCE_TIMEOUT is 2 s."""
    p = stream(redis_url, camera.url, "silent", EI_SOURCE_TIMEOUT="2")
    try:
        wait_for(lambda: pushed(redis_client) >= 5, 30, "frames from the RTSP camera")
        camera.freeze()
        frozen = time.monotonic()
        wait_for(lambda: state(redis_client, "silent").get("state") == "retrying", 60,
                 "the stream to give up on the silent camera")
        silent = time.monotonic() - frozen
        # Not before two read timeouts, and well before the default's 25 s.
        assert 4 <= silent < 20, silent
        assert p.alive() and state(redis_client, "silent")["reconnects"] == 0
        camera.thaw()
        wait_for(lambda: state(redis_client, "silent").get("state") == "live", 30,
                 "the stream to be live again")
        assert state(redis_client, "silent")["reconnects"] == 1
        assert p.stop() == 0
        assert_no_secret(p.output(), f"rtsp://{USER}:***@127.0.0.1:{camera.port}/cam/main")
    finally:
        p.stop()


def test_a_pool_source_on_an_rtsp_camera_goes_live_is_retried_and_resumes(
        camera: RtspServer, redis_url: str, redis_client: redis.Redis, tmp_path: Path) -> None:
    public = f"rtsp://{USER}:***@127.0.0.1:{camera.port}/cam/main"
    SourceStore(redis_client).put(SourceConfig("gate-1", camera.url, ("people",), fps=5.0))
    # Loopback is refused unless listed (EI_SOURCE_ALLOW, doc/security.md).
    p = Service(["stream", "--pool"], env={
        "EI_REDIS_URL": redis_url, "EI_MEDIA_DIR": str(tmp_path), "EI_SOURCE_ALLOW": "127.0.0.1",
        "EI_LEASE_SECONDS": "2", "EI_REPLICA_ID": "pool-a", "EI_LOG_LEVEL": "DEBUG"})
    try:
        wait_for(lambda: pushed(redis_client) >= 5, 30, "frames from the RTSP camera")
        info = state(redis_client, "gate-1")
        assert (info["state"], info["source"], info["replica"]) == ("live", public, "pool-a")
        assert decode(redis_client.lindex(keys.queue("people"), -1)).stream == "gate-1"
        assert metric(p, "ei_pool_sources ") == 1

        assert cut_and_restore(camera, redis_client, p, "gate-1")["replica"] == "pool-a"
        assert metric(p, "ei_pool_sources ") == 1  # the lease was kept throughout

        raw = redis_client.hgetall(keys.stream_info("gate-1"))
        assert_no_secret(repr(raw) + metrics(p), public)
        assert p.stop() == 0
        assert_no_secret(p.output(), public)
    finally:
        p.stop()
