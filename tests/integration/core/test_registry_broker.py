"""Registries and the output broker against a real redis-server."""

from __future__ import annotations

import time
from dataclasses import replace

import pytest
import redis

from elastic_inference.core import keys
from elastic_inference.core.broker import OutputBroker
from elastic_inference.core.registry import StreamRegistry, WorkerRegistry, worker_types
from elastic_inference.core.result import Detection, Result
from tests.outputs import publish

pytestmark = pytest.mark.integration


def test_stream_entry_disappears_after_its_ttl(redis_client: redis.Redis) -> None:
    reg = StreamRegistry(redis_client, ttl=3)
    now = time.time()
    reg.beat("cam1", {"types": ["face"], "w": 640}, now=now)
    reg.beat("cam2", {"types": ["people"]}, now=now - 10)
    members = reg.members(now=now)
    assert [m.id for m in members] == ["cam1"]
    assert members[0].info == {"types": ["face"], "w": 640}
    assert reg.ids(now=now + 4) == []


def test_workers_are_counted_per_type(redis_client: redis.Redis) -> None:
    face = WorkerRegistry(redis_client, "face")
    face.beat("w1", {"model": "blazeface"})
    face.beat("w2", {"model": "blazeface"})
    WorkerRegistry(redis_client, "car").beat("w3", {})
    assert face.count() == 2
    face.remove("w1")
    assert face.count() == 1
    assert worker_types(redis_client) == ["car", "face"]


def result(stream: str, seq: int, label: str = "Person") -> Result:
    return Result(stream=stream, type="people", seq=seq, ts_capture=time.time(),
                  ts_done=time.time(), model="m", device="CPU", w=4, h=4,
                  detections=(Detection(label, 0.8, (0, 0, 1, 1)),))


def test_publish_keeps_jpeg_untouched_and_bounds_the_live_buffer(
        redis_client: redis.Redis) -> None:
    broker = OutputBroker(redis_client, out_maxlen=10)
    jpeg = b"\xff\xd8" + bytes(range(256))
    for seq in range(300):
        publish(broker, [(result("cam", seq), jpeg)])
    latest = broker.latest("cam")[0]
    assert latest.jpeg == b"" and latest.ref  # the entry refers to the stored frame
    assert broker.attach_frames([latest])[0].jpeg == jpeg and b'"seq":299' in latest.result
    assert redis_client.xlen(keys.out("cam")) < 300  # approximate MAXLEN trims
    assert redis_client.xlen(keys.results("cam")) == 300


def test_read_returns_only_new_entries_across_streams(redis_client: redis.Redis) -> None:
    broker = OutputBroker(redis_client)
    publish(broker, [(result("a", 0), b"\xff\xd8a")])
    cursors = {"a": "$", "b": "$"}
    assert broker.read(cursors, block_ms=100) == []
    publish(broker, [(result("a", 1), b"\xff\xd8a"), (result("b", 1), b"\xff\xd8b")])
    got = broker.attach_frames(broker.read({"a": "0", "b": "0"}, block_ms=100, count=10))
    assert sorted((e.stream, e.jpeg) for e in got) == [("a", b"\xff\xd8a"), ("a", b"\xff\xd8a"),
                                                      ("b", b"\xff\xd8b")]


def test_attach_frames_fetches_each_frame_once_and_leaves_a_gone_one_empty(
        redis_client: redis.Redis) -> None:
    broker = OutputBroker(redis_client)
    first = publish(broker, [(result("f", 0), b"\xff\xd8zero")])[0]
    publish(broker, [(result("f", 1), b"\xff\xd8one"),
                     (replace(result("f", 1), type="face"), b"\xff\xd8one")])
    redis_client.xdel(keys.frames("f"), first)
    entries = broker.latest("f", 3)
    assert len({e.ref for e in entries}) == 2  # two types' results share one stored frame
    attached = broker.attach_frames(entries)
    assert [e.jpeg for e in attached] == [b"\xff\xd8one", b"\xff\xd8one", b""]
    assert [(e.entry_id, e.result) for e in attached] == \
        [(e.entry_id, e.result) for e in entries]


def test_history_by_time_range(redis_client: redis.Redis) -> None:
    broker = OutputBroker(redis_client, retention=3600)
    t0 = time.time()
    publish(broker, [(result("h", 1), b"\xff\xd8")])
    time.sleep(0.05)
    t1 = time.time()
    time.sleep(0.05)
    publish(broker, [(result("h", 2), b"\xff\xd8")])
    assert [b'"seq":1' in r for _, r in broker.history("h", t0 - 1, t1)] == [True]
    assert len(broker.history("h", t0 - 1, time.time() + 1)) == 2
