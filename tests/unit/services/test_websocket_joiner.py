"""Which live results carry their frame's JPEG: the first of each frame, once per read."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import replace

import pytest

from elastic_inference.core.broker import OutputEntry
from elastic_inference.core.live import decode_frame
from elastic_inference.services.websocket.joiner import RESTART_GAP, FrameJoiner, Outgoing

JPEGS = {"10-0": b"\xff\xd8jpeg-of-seq-5\xff\xd9", "11-0": b"\xff\xd8jpeg-of-seq-6\xff\xd9",
         "20-0": b"\xff\xd8cam2-seq-5\xff\xd9"}


class Store:
    """A fake of ``OutputBroker.attach_frames``: the JPEGs of ``JPEGS``; records each call."""

    def __init__(self, jpegs: dict[str, bytes] | None = None) -> None:
        self.jpegs = JPEGS if jpegs is None else jpegs
        self.calls: list[list[str]] = []

    def attach(self, entries: Sequence[OutputEntry]) -> list[OutputEntry]:
        self.calls.append([e.entry_id for e in entries])
        return [replace(e, jpeg=self.jpegs.get(e.ref, b"")) for e in entries]


def entry(eid: str, seq: int, infer_type: str = "people", ref: str = "10-0",
          stream: str = "cam1", ts: float | None = None) -> OutputEntry:
    """A result as a worker writes it; captured at ``ts`` (default: 1000 + seq / 10)."""
    result = {"v": 1, "stream": stream, "type": infer_type, "seq": seq, "detections": [],
              "ts_capture": 1000 + seq / 10 if ts is None else ts}
    return OutputEntry(stream, eid, b"", json.dumps(result).encode(), ref)


def kinds(out: list[Outgoing]) -> list[str]:
    return ["frame" if o.is_frame else "text" if o.message is not None else "none" for o in out]


def test_the_first_result_of_a_frame_carries_the_jpeg_and_the_others_go_as_text() -> None:
    store, joiner = Store(), FrameJoiner()
    out = joiner.join([entry("1-0", 5, "people"), entry("1-1", 5, "face"),
                       entry("1-2", 5, "car")], store.attach)
    assert kinds(out) == ["frame", "text", "text"]
    assert store.calls == [["1-0"]]  # only the frame's JPEG is fetched, in one call
    assert isinstance(out[0].message, bytes)
    header, jpeg = decode_frame(out[0].message)
    assert jpeg == JPEGS["10-0"] and header["id"] == "1-0" and header["result"]["seq"] == 5
    assert isinstance(out[1].message, str)
    assert json.loads(out[1].message) == {
        "result": {"v": 1, "stream": "cam1", "type": "face", "seq": 5, "detections": [],
                   "ts_capture": 1000.5}, "stream": "cam1", "id": "1-1"}
    assert [o.infer_type for o in out] == ["people", "face", "car"]


def test_a_frame_already_sent_or_older_goes_as_text_without_a_fetch() -> None:
    store, joiner = Store(), FrameJoiner()
    joiner.join([entry("1-0", 5, "people")], store.attach)
    out = joiner.join([entry("1-1", 5, "face"), entry("1-2", 4, "car")], store.attach)
    assert kinds(out) == ["text", "text"]
    assert store.calls == [["1-0"]]
    out = joiner.join([entry("2-0", 6, "face", ref="11-0"), entry("2-1", 6, "people",
                                                                  ref="11-0")], store.attach)
    assert kinds(out) == ["frame", "text"]
    assert store.calls[-1] == ["2-0"]
    assert joiner.last_sent == {"cam1": (6, 1000.6)}


def test_each_stream_has_its_own_frames_and_one_fetch_serves_all() -> None:
    store, joiner = Store(), FrameJoiner()
    out = joiner.join([entry("1-0", 5), entry("1-1", 5, "face"),
                       entry("3-0", 5, stream="cam2", ref="20-0"),
                       entry("3-1", 5, "face", stream="cam2", ref="20-0")], store.attach)
    assert kinds(out) == ["frame", "text", "frame", "text"]
    assert store.calls == [["1-0", "3-0"]]
    assert isinstance(out[2].message, bytes)
    assert decode_frame(out[2].message)[1] == JPEGS["20-0"]


def test_a_frame_the_store_no_longer_has_goes_as_text() -> None:
    store, joiner = Store({}), FrameJoiner()
    out = joiner.join([entry("1-0", 5), entry("1-1", 5, "face")], store.attach)
    assert kinds(out) == ["text", "text"]
    out = joiner.join([entry("1-2", 5, "car")], store.attach)
    assert kinds(out) == ["text"]
    assert store.calls == [["1-0"]]  # the frame is not asked for again


def test_a_result_without_a_ref_goes_as_text() -> None:
    store = Store()
    out = FrameJoiner().join([entry("1-0", 5, ref="")], store.attach)
    assert kinds(out) == ["text"] and store.calls == []


def test_a_restarted_stream_sends_frames_again() -> None:
    """A stream that restarts counts from 0 again: its frames are captured later than the
    last one sent, unlike a late result of an older frame."""
    store, joiner = Store(), FrameJoiner()
    joiner.join([entry("1-0", 100, ts=2000.0)], store.attach)
    assert kinds(joiner.join([entry("1-1", 99, "face", ts=1999.9)], store.attach)) == ["text"]
    out = joiner.join([entry("2-0", 0, ts=2001.0, ref="11-0"),
                       entry("2-1", 0, "face", ts=2001.0, ref="11-0")], store.attach)
    assert kinds(out) == ["frame", "text"]
    assert joiner.last_sent == {"cam1": (0, 2001.0)}
    assert kinds(joiner.join([entry("2-2", 1, ts=2001.1, ref="11-0")], store.attach)) == \
        ["frame"]


def test_without_capture_times_a_seq_far_below_means_a_restart() -> None:
    store, joiner = Store(), FrameJoiner()
    bare = [OutputEntry("cam1", eid, b"", json.dumps({"type": "people", "seq": seq}).encode(),
                        "10-0") for eid, seq in (("1-0", 1000), ("1-1", 1000 - RESTART_GAP),
                                                 ("1-2", 0))]
    assert kinds(joiner.join(bare[:1], store.attach)) == ["frame"]
    assert kinds(joiner.join(bare[1:2], store.attach)) == ["text"]  # late, within the window
    assert kinds(joiner.join(bare[2:], store.attach)) == ["frame"]


@pytest.mark.parametrize("raw", [b"not json", b"[1, 2]", b"\xff\xfe", b"[" * 100_000])
def test_a_result_that_is_not_an_object_is_skipped_but_keeps_its_place(raw: bytes) -> None:
    store = Store()
    bad = OutputEntry("cam1", "1-0", b"", raw, "10-0")
    out = FrameJoiner().join([bad, entry("1-1", 5)], store.attach)
    assert out[0] == Outgoing("cam1", "1-0", "", None)
    assert kinds(out) == ["none", "frame"]


def test_a_result_without_an_int_seq_goes_as_text() -> None:
    store = Store()
    odd = OutputEntry("cam1", "1-0", b"", b'{"type": "people", "seq": true}', "10-0")
    assert kinds(FrameJoiner().join([odd], store.attach)) == ["text"]
    assert store.calls == []


def test_streams_are_forgotten_with_their_cursors() -> None:
    store, joiner = Store(), FrameJoiner()
    joiner.join([entry("1-0", 5), entry("3-0", 5, stream="cam2", ref="20-0")], store.attach)
    joiner.retain({"cam2"})
    assert set(joiner.last_sent) == {"cam2"}
    assert kinds(joiner.join([entry("1-1", 5, "face")], store.attach)) == ["frame"]
    joiner.clear()
    assert joiner.last_sent == {}
