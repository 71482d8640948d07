"""The inference worker on a real redis-server with real OpenVINO models."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import cv2
import msgpack
import numpy as np
import pytest
import redis
from prometheus_client import generate_latest
from skimage import data

from elastic_inference.core import frame as frame_msg
from elastic_inference.core import keys
from elastic_inference.core.framestore import FrameStore
from elastic_inference.core.queue import FrameQueue
from elastic_inference.core.result import decode_result
from elastic_inference.core.runtime import ServiceRuntime
from elastic_inference.core.settings import InferSettings, parse_settings
from elastic_inference.engine.factory import load_detector
from elastic_inference.services.infer import InferWorker, decode_jpeg, reduction_for
from tests.redis_server import RedisServer

pytestmark = pytest.mark.integration

#: The device's default precision (BF16 on CPUs with AVX-512 BF16 or AMX) and true f32 (what
#: AVX2-only CPUs run): checks on what the model finds must hold at both.
PRECISIONS = pytest.mark.parametrize("precision", ["", "f32"], ids=["default", "f32"])


def astronaut_jpeg() -> bytes:
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR))
    assert ok
    return buf.tobytes()


def make_worker(redis_url: str, model_dir: Path, infer_type: str, precision: str = "",
                **flags: str) -> InferWorker:
    argv = ["--type", infer_type, "--model-dir", str(model_dir), "--redis-url", redis_url]
    for k, v in flags.items():
        argv += [f"--{k.replace('_', '-')}", v]
    settings = parse_settings(InferSettings, argv, {})
    detector = load_detector(infer_type, model_dir, "CPU", precision=precision)
    return InferWorker(settings, redis.Redis.from_url(redis_url), detector,
                       ServiceRuntime("infer-test"), worker_id=f"test-{infer_type}")


def frame_bytes(jpeg: bytes, seq: int, infer_type: str = "face", ts: float | None = None,
                w: int = 512, h: int = 512) -> bytes:
    return frame_msg.Frame(stream="astro", type=infer_type, seq=seq,
                           ts=time.time() if ts is None else ts, w=w, h=h, jpeg=jpeg).encode()


def push_stored_frames(client: redis.Redis, n: int, first: int = 0) -> FrameQueue:
    """``n`` v2 face frames of stream "astro" from seq ``first``, their JPEGs in the frame
    store."""
    q, store, jpeg = FrameQueue(client, "face", maxlen=100), FrameStore(client), astronaut_jpeg()
    for seq in range(first, first + n):
        q.push(frame_msg.Frame("astro", "face", seq, time.time(), 512, 512, b"",
                               store.add("astro", jpeg, 100)).encode())
    return q


@PRECISIONS
def test_bad_input_is_counted_invalid_and_the_worker_goes_on(
        redis_url: str, model_dir: Path, precision: str) -> None:
    q = FrameQueue(redis.Redis.from_url(redis_url), "face", maxlen=100)
    good = frame_bytes(astronaut_jpeg(), 2)
    unknown_version = msgpack.packb({**msgpack.unpackb(good), "v": 99}, use_bin_type=True)
    corrupt_jpeg = frame_bytes(b"\xff\xd8\xff\xe0" + b"\x00garbage" * 50, 1)
    for message in (corrupt_jpeg, good[: len(good) // 2], unknown_version, good):
        q.push(message)
    worker = make_worker(redis_url, model_dir, "face", precision, max_frames="1", max_age="0")
    assert worker.run() == 0
    text = generate_latest(worker.runtime.registry).decode()
    assert 'reason="invalid",type="face"} 3.0' in text
    assert q.stats().drops["invalid"] == 3
    entries = worker.broker.latest("astro")
    assert len(entries) == 1
    result = decode_result(entries[0].result)
    assert result.seq == 2 and result.model == "blazeface" and result.device == "CPU"
    assert entries[0].ref  # a frame that came with its JPEG is stored once for its results
    stored = worker.broker.attach_frames(entries)[0].jpeg
    assert stored == frame_msg.decode(good).jpeg  # passed through untouched
    face = max(result.detections, key=lambda d: d.score)
    x1, y1, x2, y2 = face.box
    assert 0.3 < (x1 + x2) / 2 < 0.6 and 0.05 < (y1 + y2) / 2 < 0.4


def test_stale_frames_are_dropped_at_pop_time(redis_url: str, model_dir: Path) -> None:
    q = FrameQueue(redis.Redis.from_url(redis_url), "face", maxlen=100)
    jpeg = astronaut_jpeg()
    q.push(frame_bytes(jpeg, 1, ts=time.time() - 60))
    q.push(frame_bytes(jpeg, 2))
    worker = make_worker(redis_url, model_dir, "face", max_frames="1", max_age="5")
    worker.run()
    assert q.stats().drops["stale"] == 1
    assert decode_result(worker.broker.latest("astro")[0].result).seq == 2


def test_reference_frames_fetch_their_jpeg_and_a_trimmed_or_foreign_one_is_dropped(
        redis_url: str, model_dir: Path) -> None:
    """A v2 frame's JPEG comes from the frame store; one trimmed from it is stale, one that is
    not a JPEG of the frame's size invalid; the result refers to the same stored frame."""
    client = redis.Redis.from_url(redis_url)
    q = FrameQueue(client, "face", maxlen=100)
    store = FrameStore(client)
    jpeg = astronaut_jpeg()
    trimmed = store.add("astro", jpeg, 100)
    client.xdel(keys.frames("astro"), trimmed)
    small = cv2.imencode(".jpg", np.zeros((8, 8, 3), np.uint8))[1].tobytes()
    foreign = store.add("astro", small, 100)
    good = store.add("astro", jpeg, 100)
    for seq, ref in enumerate((trimmed, foreign, good)):
        q.push(frame_msg.Frame("astro", "face", seq, time.time(), 512, 512, b"", ref).encode())
    worker = make_worker(redis_url, model_dir, "face", max_frames="1", max_age="0")
    assert worker.run() == 0  # max_frames counts the frames taken to infer, not the drops
    assert q.stats().drops["stale"] == 1 and q.stats().drops["invalid"] == 1
    entries = worker.broker.latest("astro", 5)
    assert len(entries) == 1 and entries[0].ref == good
    assert decode_result(entries[0].result).seq == 2
    assert worker.broker.attach_frames(entries)[0].jpeg == jpeg
    assert client.xlen(keys.frames("astro")) == 2  # the worker stored nothing more


def test_an_outage_under_the_pop_puts_the_results_riding_on_it_back(model_dir: Path) -> None:
    """Finished results are published in the round trip of the next pop; when Redis is down
    for that round trip they wait for the next one, and none is lost."""
    server = RedisServer(config=("--appendonly", "yes")).start()  # keeps its data over a restart
    try:
        client = redis.Redis.from_url(server.url)
        push_stored_frames(client, 48)
        worker = make_worker(server.url, model_dir, "face", max_frames="56", max_age="0")
        for _ in range(400):  # results come back when their request is reused, or flushed
            worker.step()
            if worker._unpublished:
                break
        results = list(worker._unpublished)
        assert results, "no results after 400 turns"
        q = push_stored_frames(client, 8, first=48)  # frames for the pop the results ride on
        server.stop()
        assert worker._top_up(block=False) is False
        assert worker.backoff.failures == 1  # the round trip was tried, and failed
        assert worker._unpublished == results
        server.start()
        assert worker.run() == 0
        assert sorted(decode_result(f[b"result"]).seq
                      for _, f in client.xrange(keys.results("astro"))) == list(range(56))
        assert q.stats().drops == dict.fromkeys(q.stats().drops, 0)
    finally:
        server.stop()


def test_a_stopped_worker_infers_and_publishes_every_frame_it_popped(
        redis_url: str, model_dir: Path) -> None:
    client = redis.Redis.from_url(redis_url)
    q = push_stored_frames(client, 48)
    worker = make_worker(redis_url, model_dir, "face", max_age="0")
    worker.step()
    popped = 48 - q.length()
    assert popped > 0 and not worker._unpublished
    worker.stop.set()  # as SIGTERM does
    assert worker.run() == 0
    assert client.xlen(keys.results("astro")) == popped


@PRECISIONS
def test_results_go_to_live_buffer_and_history_with_metrics(
        redis_url: str, model_dir: Path, precision: str) -> None:
    client = redis.Redis.from_url(redis_url)
    q = FrameQueue(client, "people", maxlen=100)
    jpeg = astronaut_jpeg()
    for seq in range(6):
        q.push(frame_bytes(jpeg, seq, "people"))
    worker = make_worker(redis_url, model_dir, "people", precision, max_frames="6", batch="4",
                         max_age="0")
    worker.run()
    assert client.xlen(keys.results("astro")) == 6
    labels = {d.label for d in decode_result(worker.broker.latest("astro")[0].result).detections}
    assert labels == {"person"}  # the people type keeps only person
    worker.update_stats()
    text = generate_latest(worker.runtime.registry).decode()
    metric_labels = 'device="CPU",model="nanodet-g-416",type="people"'
    assert f"ei_frames_inferred_total{{{metric_labels}}} 6.0" in text
    for name in ("ei_capacity_fps", "ei_infer_fps", "ei_scale_ratio"):
        line = next(ln for ln in text.splitlines() if ln.startswith(name + "{"))
        assert float(line.rsplit(" ", 1)[1]) > 0, line
    assert "ei_frame_latency_seconds_count" in text


def test_a_batched_model_is_kept_three_batches_ahead_and_topped_up_a_batch_at_a_time(
        redis_url: str, model_dir: Path) -> None:
    """BlazeFace runs 8 frames a request: the first pop takes 24 (three requests' worth), then
    each pop the 8 frames one request used; a refill of 12 at once ran 11 % slower."""
    client = redis.Redis.from_url(redis_url)
    q = FrameQueue(client, "face", maxlen=100)
    jpeg = astronaut_jpeg()
    for seq in range(64):
        q.push(frame_bytes(jpeg, seq))
    worker = make_worker(redis_url, model_dir, "face", max_frames="64", max_age="0")
    assert worker.detector.batch == 8
    assert worker.run() == 0
    assert client.xlen(keys.results("astro")) == 64
    registry, labels = worker.runtime.registry, {"type": "face", "model": "blazeface",
                                                   "device": "CPU"}
    assert registry.get_sample_value("ei_batch_size_sum", labels) == 64
    assert registry.get_sample_value("ei_batch_size_count", labels) == 6  # 24 + 5 x 8


@PRECISIONS
def test_people_stream_over_vtest_finds_people_in_most_frames(
        redis_url: str, model_dir: Path, sample_dir: Path, precision: str) -> None:
    n = 30
    stream = subprocess.run(
        [sys.executable, "-m", "elastic_inference.cli", "stream", "--source",
         str(sample_dir / "vtest.avi"), "--stream-id", "vtest", "--types", "people",
         "--fps", "0", "--max-frames", str(n), "--queue-maxlen", "100", "--metrics-port", "0",
         "--metrics-host", "127.0.0.1", "--redis-url", redis_url],
        capture_output=True, timeout=60, check=False)
    assert stream.returncode == 0, stream.stderr.decode()[-2000:]
    worker = make_worker(redis_url, model_dir, "people", precision, max_frames=str(n),
                         max_age="0")
    worker.run()
    entries = redis.Redis.from_url(redis_url).xrange(keys.results("vtest"))
    assert len(entries) == n
    with_person = sum(
        any(d["label"] == "person" for d in json.loads(f[b"result"])["detections"])
        for _, f in entries)
    assert with_person / n >= 0.8, f"only {with_person}/{n} frames with a person"


def test_reduction_keeps_frames_at_least_model_sized() -> None:
    assert reduction_for(1280, 720, (300, 300)) == 2
    assert reduction_for(1280, 720, (128, 128)) == 4
    assert reduction_for(300, 300, (300, 300)) == 1
    img = np.zeros((720, 1280, 3), np.uint8)
    _, buf = cv2.imencode(".jpg", img)

    assert decode_jpeg(buf.tobytes(), 4).shape == (180, 320, 3)
