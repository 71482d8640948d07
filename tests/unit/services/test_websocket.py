"""Websocket fan-out without a network: framing, subscribe validation, mailboxes and the hub."""

from __future__ import annotations

import asyncio
import json
import struct

import pytest
from prometheus_client import CollectorRegistry

from elastic_inference.core.errors import SubscribeError
from elastic_inference.core.live import (
    MAX_SUBSCRIBE_IDS,
    decode_frame,
    encode_frame,
    encode_result,
    encode_tracks,
    parse_subscribe,
)
from elastic_inference.core.metrics import WS_CLIENTS, WS_SENT, WS_SKIPPED, WebsocketMetrics
from elastic_inference.services.websocket import MAX_PENDING_TEXT, Hub, Mailbox
from elastic_inference.services.websocket.hub import FRAME, TRACKS
from elastic_inference.services.websocket.hub import RESULT as TEXT_RESULT

JPEG = b"\xff\xd8\xff\xe0fake-jpeg-\x00\x01\x02\xff\xd9"
RESULT = {"v": 1, "stream": "cam1", "type": "people", "seq": 7, "detections": []}


# -- framing -----------------------------------------------------------------------------------


def test_frame_round_trip_keeps_jpeg_bytes_untouched() -> None:
    data = encode_frame("cam1", "1700000000000-0", RESULT, JPEG)
    (n,) = struct.unpack(">I", data[:4])
    header = json.loads(data[4:4 + n].decode("utf-8"))
    assert header == {"stream": "cam1", "id": "1700000000000-0", "result": RESULT}
    assert data[4 + n:] == JPEG
    assert decode_frame(data) == (header, JPEG)


def test_frame_header_is_utf8() -> None:
    result = {**RESULT, "model": "modèle-ü"}
    header, jpeg = decode_frame(encode_frame("cam1", "1-0", result, JPEG))
    assert header["result"]["model"] == "modèle-ü"
    assert jpeg == JPEG


@pytest.mark.parametrize("data", [b"", b"\x00\x00", struct.pack(">I", 99) + b"{}",
                                  struct.pack(">I", 2) + b"[]"])
def test_decode_frame_rejects_malformed(data: bytes) -> None:
    with pytest.raises(ValueError):
        decode_frame(data)


def test_result_text_carries_the_result_stream_and_id() -> None:
    text = encode_result("cam1", "5-1", {**RESULT, "model": "modèle"})
    assert json.loads(text) == {"result": {**RESULT, "model": "modèle"}, "stream": "cam1",
                                "id": "5-1"}


# -- subscribe validation ---------------------------------------------------------------------


def test_subscribe_star_means_everything() -> None:
    assert parse_subscribe('{"subscribe": "*"}') is None


def test_subscribe_list() -> None:
    assert parse_subscribe('{"subscribe": ["cam1", "b.2-x_y"]}') == frozenset({"cam1", "b.2-x_y"})
    assert parse_subscribe('{"subscribe": []}') == frozenset()


@pytest.mark.parametrize(("text", "fragment"), [
    ("{not json", "not valid JSON"),
    ('["cam1"]', "expected an object"),
    ('{"subscribe": "cam1"}', "must be a list"),
    ('{"subscribe": {"cam1": 1}}', "must be a list"),
    ('{"subscribe": [1]}', "invalid stream id"),
    ('{"subscribe": ["bad id"]}', "invalid stream id"),
    ('{"subscribe": ["' + "x" * 65 + '"]}', "invalid stream id"),
    ('{"subscribe": ["a"], "extra": 1}', "unknown field"),
    ('{"unsubscribe": ["a"]}', "expected an object"),
])
def test_subscribe_rejects_bad_shapes(text: str, fragment: str) -> None:
    with pytest.raises(SubscribeError, match=fragment):
        parse_subscribe(text)


def test_subscribe_limits_list_length() -> None:
    ids = [f"s{i}" for i in range(MAX_SUBSCRIBE_IDS + 1)]
    with pytest.raises(SubscribeError, match="more than"):
        parse_subscribe(json.dumps({"subscribe": ids}))


# -- mailbox and hub ---------------------------------------------------------------------------


class Recorder:
    """A fake connection send: records messages, optionally blocked until released."""

    def __init__(self, blocked: bool = False) -> None:
        self.messages: list[str | bytes] = []
        self.gate = asyncio.Event()
        if not blocked:
            self.gate.set()

    async def send(self, message: str | bytes) -> None:
        await self.gate.wait()
        self.messages.append(message)

    @property
    def frames(self) -> list[bytes]:
        return [m for m in self.messages if isinstance(m, bytes)]

    @property
    def texts(self) -> list[dict[str, object]]:
        return [json.loads(m) for m in self.messages if isinstance(m, str)]


async def settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0)


def test_mailbox_latest_wins_and_counts_skips() -> None:
    async def scenario() -> None:
        registry = CollectorRegistry()
        metrics = WebsocketMetrics(registry)
        rec = Recorder(blocked=True)
        box = Mailbox(rec.send, metrics)
        task = asyncio.create_task(box.run())
        box.offer("a", b"a1")
        box.offer("b", b"b1")
        box.offer("a", b"a2")
        box.offer("a", b"a3")
        assert box.skipped == 2 and box.pending == 2
        rec.gate.set()
        await settle()
        assert rec.frames == [b"b1", b"a3"]  # in the order they were last offered
        assert box.sent == 2
        assert registry.get_sample_value(WS_SENT) == 2
        assert registry.get_sample_value(WS_SKIPPED) == 2
        task.cancel()

    asyncio.run(scenario())


def test_mailbox_keeps_one_frame_per_stream_and_each_types_latest_result() -> None:
    async def scenario() -> None:
        registry = CollectorRegistry()
        rec = Recorder(blocked=True)
        box = Mailbox(rec.send, WebsocketMetrics(registry))
        task = asyncio.create_task(box.run())
        box.offer("a", b"frame-1", "people", FRAME)
        box.offer("a", '{"result":{"type":"face","seq":1}}', "face", TEXT_RESULT)
        box.offer("a", b"frame-2", "face", FRAME)  # the frame of seq 2 came with face first
        box.offer("a", '{"result":{"type":"people","seq":2}}', "people", TEXT_RESULT)
        box.offer("a", '{"result":{"type":"face","seq":3}}', "face", TEXT_RESULT)
        assert box.skipped == 2 and box.pending == 3
        rec.gate.set()
        await settle()
        assert rec.frames == [b"frame-2"]
        assert rec.texts == [{"result": {"type": "people", "seq": 2}},
                             {"result": {"type": "face", "seq": 3}}]
        # Only frames count: one skipped (frame-1), one sent.
        assert registry.get_sample_value(WS_SKIPPED) == 1
        assert registry.get_sample_value(WS_SENT) == 1
        task.cancel()

    asyncio.run(scenario())


def test_mailbox_never_sends_a_result_before_the_frame_of_its_seq() -> None:
    """A replaced slot moves to the end: the result of seq 6 replaces one of seq 5 that was
    pending before the frame of seq 6, and still goes out after that frame."""
    async def scenario() -> None:
        rec = Recorder(blocked=True)
        box = Mailbox(rec.send)
        task = asyncio.create_task(box.run())
        box.offer("a", '{"result":{"type":"face","seq":5}}', "face", TEXT_RESULT)
        box.offer("a", b"frame-6", "people", FRAME)
        box.offer("a", '{"result":{"type":"face","seq":6}}', "face", TEXT_RESULT)
        rec.gate.set()
        await settle()
        assert rec.messages == [b"frame-6", '{"result":{"type":"face","seq":6}}']
        task.cancel()

    asyncio.run(scenario())


def test_mailbox_keeps_tracks_beside_frames_latest_per_type() -> None:
    async def scenario() -> None:
        rec = Recorder(blocked=True)
        box = Mailbox(rec.send)
        task = asyncio.create_task(box.run())
        box.offer("a", b"people-1", "people", FRAME)
        box.offer("a", '{"tracks":{"seq":1}}', "people", TRACKS)
        box.offer("a", '{"tracks":{"seq":2}}', "people", TRACKS)
        assert box.skipped == 1  # the older tracks message, not the frame
        rec.gate.set()
        await settle()
        assert rec.frames == [b"people-1"] and rec.texts == [{"tracks": {"seq": 2}}]
        task.cancel()

    asyncio.run(scenario())


def test_encode_tracks_wraps_an_object_and_refuses_anything_else() -> None:
    infer_type, text = encode_tracks(b'{"type": "people", "seq": 3, "tracks": []}')
    assert infer_type == "people"
    assert json.loads(text) == {"tracks": {"type": "people", "seq": 3, "tracks": []}}
    assert encode_tracks(b'{"seq": 3}')[0] == ""
    for bad in (b"", b"{nope", b"[1]", b'"x"', b"\xff\xfe", b"[" * 100_000):
        with pytest.raises(ValueError):
            encode_tracks(bad)


def test_mailbox_control_texts_bounded_and_sent_before_frames() -> None:
    async def scenario() -> None:
        rec = Recorder(blocked=True)
        box = Mailbox(rec.send)
        task = asyncio.create_task(box.run())
        box.offer("a", b"frame")
        for i in range(MAX_PENDING_TEXT + 3):
            box.post_text(json.dumps({"error": str(i)}))
        box.offer_streams(json.dumps({"streams": ["old"]}))
        box.offer_streams(json.dumps({"streams": ["a"]}))
        rec.gate.set()
        await settle()
        texts = rec.texts
        assert texts[0] == {"streams": ["a"]}
        assert [t["error"] for t in texts[1:]] == [str(i) for i in range(3, MAX_PENDING_TEXT + 3)]
        assert rec.messages[-1] == b"frame"
        task.cancel()

    asyncio.run(scenario())


def test_subscription_filters_and_drops_unwanted_pending() -> None:
    async def scenario() -> None:
        box = Mailbox(Recorder(blocked=True).send)
        box.offer("a", b"a1")
        box.offer("b", b"b1")
        box.subscribe(frozenset({"b"}))
        assert box.wants("b") and not box.wants("a")
        assert box.pending == 1
        box.subscribe(None)
        assert box.wants("anything")

    asyncio.run(scenario())


def test_slow_client_does_not_delay_fast_one() -> None:
    async def scenario() -> None:
        registry = CollectorRegistry()
        metrics = WebsocketMetrics(registry)
        hub = Hub(metrics)
        slow, fast = Recorder(blocked=True), Recorder()
        slow_box, fast_box = Mailbox(slow.send, metrics), Mailbox(fast.send, metrics)
        hub.add(slow_box)
        hub.add(fast_box)
        assert registry.get_sample_value(WS_CLIENTS) == 2
        tasks = [asyncio.create_task(b.run()) for b in (slow_box, fast_box)]
        for i in range(50):
            assert hub.dispatch("cam1", f"f{i}".encode()) == 2
            await settle()  # the fast client's sender drains between entries
        assert fast.frames == [f"f{i}".encode() for i in range(50)]
        assert fast_box.skipped == 0
        assert slow.frames == []
        assert slow_box.pending == 1  # its sender is stuck on the streams text; one frame waits
        assert slow_box.skipped == 49
        slow.gate.set()
        await settle()
        assert slow.frames == [b"f49"]
        hub.remove(slow_box)
        assert registry.get_sample_value(WS_CLIENTS) == 1
        for t in tasks:
            t.cancel()

    asyncio.run(scenario())


def test_hub_respects_subscriptions() -> None:
    async def scenario() -> None:
        hub = Hub()
        a, b = Mailbox(Recorder().send), Mailbox(Recorder().send)
        a.subscribe(frozenset({"cam1"}))
        hub.add(a)
        hub.add(b)
        assert hub.dispatch("cam2", b"x") == 1
        assert hub.dispatch("cam1", b"y") == 2

    asyncio.run(scenario())


def test_hub_sends_stream_list_on_join_and_on_change_only() -> None:
    async def scenario() -> None:
        hub = Hub()
        assert hub.set_streams(["b", "a"]) is True
        assert hub.set_streams(["a", "b"]) is False
        rec = Recorder()
        box = Mailbox(rec.send)
        hub.add(box)
        task = asyncio.create_task(box.run())
        await settle()
        assert rec.texts == [{"streams": ["a", "b"]}]
        assert hub.set_streams(["a"]) is True
        await settle()
        assert rec.texts[-1] == {"streams": ["a"]}
        task.cancel()

    asyncio.run(scenario())
