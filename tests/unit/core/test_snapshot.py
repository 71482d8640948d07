"""Snapshots without Redis: merging every type's boxes for the newest frame, latest per type,
job frames."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from elastic_inference.core.broker import OutputEntry
from elastic_inference.core.result import Detection, Result
from elastic_inference.core.snapshot import (
    SnapshotFollower,
    frame_view,
    latest_by_type,
    pick_snapshot,
)


def entry(infer_type: str, seq: int, jpeg: bytes = b"jpeg", label: str = "person",
          eid: str = "1-0") -> OutputEntry:
    result = Result(stream="cam1", type=infer_type, seq=seq, ts_capture=1.0, ts_done=1.1,
                    model="m", device="CPU", w=64, h=48,
                    detections=(Detection(label, 0.9, (0.1, 0.1, 0.5, 0.5)),))
    return OutputEntry("cam1", eid, jpeg, result.encode())


def test_snapshot_merges_all_types_of_the_newest_seq() -> None:
    entries = [  # newest first, as OutputBroker.latest returns them
        entry("face", 10, b"f10", "face"),
        entry("people", 11, b"p11", "person"),
        entry("car", 11, b"c11", "car"),
        entry("people", 11, b"p11-dup", "ghost"),  # an older duplicate of people/11
        entry("people", 9, b"p9", "old"),
    ]
    snap = pick_snapshot(entries)
    assert snap is not None
    assert snap.seq == 11
    assert snap.jpeg == b"p11"
    assert snap.types == ("car", "people")
    assert sorted(d.label for d in snap.detections) == ["car", "person"]


def test_snapshot_none_without_entries_and_bare_frame_without_valid_results() -> None:
    assert pick_snapshot([]) is None
    snap = pick_snapshot([OutputEntry("cam1", "1-0", b"raw", b"not json")])
    assert snap is not None and snap.jpeg == b"raw" and snap.detections == ()


class Store:
    """A fake frame store behind ``attach``: the JPEGs it still holds, and what it was asked."""

    def __init__(self, held: dict[str, bytes]) -> None:
        self.held = held
        self.asked: list[list[str]] = []

    def attach(self, entries: Sequence[OutputEntry]) -> list[OutputEntry]:
        self.asked.append([e.ref for e in entries])
        return [replace(e, jpeg=self.held.get(e.ref, b"")) for e in entries]


def referring(infer_type: str, seq: int, ref: str, label: str = "person") -> OutputEntry:
    return replace(entry(infer_type, seq, b"", label), ref=ref)


def test_snapshot_fetches_only_the_frame_it_shows() -> None:
    entries = [referring("face", 11, "11-0", "face"), referring("people", 11, "11-0"),
               referring("people", 10, "10-0")]
    store = Store({"11-0": b"j11", "10-0": b"j10"})
    snap = pick_snapshot(entries, store.attach)
    assert snap is not None and (snap.seq, snap.jpeg, snap.types) == (11, b"j11",
                                                                      ("face", "people"))
    assert store.asked == [["11-0"]]  # one frame, once, although two types refer to it


def test_snapshot_of_a_frame_no_longer_stored_falls_back_to_a_stored_one() -> None:
    entries = [referring("people", 12, "12-0"), referring("people", 11, "11-0"),
               referring("people", 10, "10-0", "older")]
    store = Store({"11-0": b"j11", "10-0": b"j10"})
    snap = pick_snapshot(entries, store.attach)
    assert snap is not None and (snap.seq, snap.jpeg) == (11, b"j11")
    assert [d.label for d in snap.detections] == ["person"]  # seq 11's boxes, not 10's
    assert store.asked == [["12-0"], ["11-0", "10-0"]]
    gone = Store({})
    snap = pick_snapshot(entries, gone.attach)
    assert snap is not None and snap.seq == 12 and snap.jpeg == b""
    assert len(gone.asked) == 2


class Output(Store):
    """A fake of the output broker's reading side: a live buffer, oldest first."""

    def __init__(self, held: dict[str, bytes]) -> None:
        super().__init__(held)
        self.entries: list[OutputEntry] = []

    def add(self, e: OutputEntry) -> None:
        self.entries.append(replace(e, entry_id=f"{len(self.entries) + 1}-0"))

    def read(self, cursors: dict[str, str], block_ms: int, count: int) -> list[OutputEntry]:
        after = int(next(iter(cursors.values())).split("-")[0])
        return [e for e in self.entries if int(e.entry_id.split("-")[0]) > after][:count]

    def latest(self, stream: str, count: int) -> list[OutputEntry]:
        return self.entries[::-1][:count]

    attach_frames = Store.attach


def test_follower_fetches_a_frame_once_for_every_picture_of_it() -> None:
    out = Output({"11-0": b"j11"})
    follower = SnapshotFollower(out, "cam1")  # type: ignore[arg-type]
    out.add(referring("people", 11, "11-0"))
    snap = follower.next_snapshot(0)
    assert snap is not None and (snap.seq, snap.jpeg, snap.types) == (11, b"j11", ("people",))
    out.add(referring("face", 11, "11-0", "face"))  # the same frame, another type's boxes
    snap = follower.next_snapshot(0)
    assert snap is not None and (snap.jpeg, snap.types) == (b"j11", ("face", "people"))
    assert out.asked == [["11-0"]]  # fetched for the first picture only
    out.add(referring("people", 12, "12-0"))  # its frame is already gone, 11's is kept
    snap = follower.next_snapshot(0)
    assert snap is not None and (snap.seq, snap.jpeg) == (11, b"j11")
    out.held.clear()
    out.add(referring("people", 13, "13-0"))
    assert follower.next_snapshot(0) is None  # nothing stored: nothing to show


def test_latest_by_type_keeps_newest_per_type() -> None:
    entries = [entry("people", 12), entry("face", 11), entry("people", 10),
               OutputEntry("cam1", "1-0", b"", b'{"v": 2}')]
    latest = latest_by_type(entries)
    assert list(latest) == ["face", "people"]
    assert latest["people"]["seq"] == 12 and latest["face"]["seq"] == 11


def test_frame_view_merges_every_valid_type_and_skips_invalid_ones() -> None:
    def result(infer_type: str, label: str) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(Result(
            stream="j0123456789ab", type=infer_type, seq=5, ts_capture=1.0, ts_done=1.1,
            model="m", device="CPU", w=64, h=48,
            detections=(Detection(label, 0.9, (0.1, 0.1, 0.5, 0.5)),)).encode())
        return data

    results = {"people": result("people", "Person"), "face": result("face", "face"),
               "car": {"v": 2}}
    snap, valid = frame_view(5, b"jpeg", results)
    assert (snap.seq, snap.jpeg, snap.types) == (5, b"jpeg", ("face", "people"))
    assert sorted(d.label for d in snap.detections) == ["Person", "face"]
    assert valid == {"face": results["face"], "people": results["people"]}
    snap, valid = frame_view(5, b"jpeg", {})
    assert snap.detections == () and valid == {}
