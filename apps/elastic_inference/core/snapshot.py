"""What a viewer sees of a stream: the newest frame with every type's boxes for that frame.

Types publish their results for one frame to ``ei:out:{stream}`` separately and interleaved,
so the picture is assembled from the newest few entries. Drawing the boxes is left to the
caller (``engine/annotate.py``): core does not decode images.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from .broker import OutputBroker, OutputEntry
from .errors import InvalidMessage
from .result import Detection, Result, parse_result, result_from_json

log = logging.getLogger(__name__)

#: Entries of ``ei:out:{stream}`` examined for a snapshot: enough to hold every type's result
#: for the newest frame when several types publish interleaved.
SNAPSHOT_SCAN = 8
#: Most new entries a follower reads at once; a full read means a backlog, skipped.
FOLLOW_READ = 32

#: Fetches the JPEGs of entries from the frame store (:meth:`OutputBroker.attach_frames`).
Attach = Callable[[Sequence[OutputEntry]], list[OutputEntry]]


@dataclass(frozen=True)
class Snapshot:
    """The frame to show for a stream and every type's detections for that same frame."""

    seq: int
    jpeg: bytes
    detections: tuple[Detection, ...]
    types: tuple[str, ...]


def _valid(entries: Sequence[OutputEntry]) -> list[tuple[OutputEntry, Result, dict[str, Any]]]:
    """(entry, Result, raw JSON) for entries whose result validates; others are skipped."""
    out = []
    for entry in entries:
        parsed = parse_result(entry.result)
        if parsed is not None:
            out.append((entry, *parsed))
    return out


@dataclass(frozen=True)
class _Choice:
    """A frame that could be shown: its snapshot (no JPEG yet) and the entries of that frame
    (newest first) to take the picture from."""

    snap: Snapshot
    entries: tuple[OutputEntry, ...]


def _choices(entries: Sequence[OutputEntry]) -> list[_Choice]:
    """The frames among ``entries`` (newest first), newest seq first, each with every type's
    detections merged; without a valid result each entry is a bare frame (seq -1)."""
    valid = _valid(entries)
    if not valid:
        return [_Choice(Snapshot(-1, b"", (), ()), (e,)) for e in entries]
    out = []
    for seq in sorted({r.seq for _, r, _ in valid}, reverse=True):
        same = [(e, r) for e, r, _ in valid if r.seq == seq]
        seen: set[str] = set()
        detections: list[Detection] = []
        for _, r in same:  # newest first: a type that published twice counts once
            if r.type not in seen:
                seen.add(r.type)
                detections.extend(r.detections)
        out.append(_Choice(Snapshot(seq, b"", tuple(detections), tuple(sorted(seen))),
                           tuple(e for e, _ in same)))
    return out


def _frame_of(choice: _Choice) -> OutputEntry:
    """The entry to take the choice's picture from: one with its JPEG, else one with a ref."""
    return next((e for e in choice.entries if e.jpeg),
                next((e for e in choice.entries if e.ref), choice.entries[0]))


def _with_frame(choices: Sequence[_Choice], attach: Attach | None) -> Snapshot:
    """The first choice whose frame is still stored, with its JPEG, fetching only the first
    choice's frame (one round trip), and the others' only when that one is gone (one more).
    When none is stored: the first choice with an empty JPEG."""
    firsts = [_frame_of(c) for c in choices]
    if attach is not None:
        for start, stop in ((0, 1), (1, len(choices))):
            batch = firsts[start:stop]
            if any(e.ref and not e.jpeg for e in batch):
                firsts[start:stop] = attach(batch)
            for choice, entry in zip(choices[start:stop], firsts[start:stop], strict=True):
                if entry.jpeg:
                    return replace(choice.snap, jpeg=entry.jpeg)
    for choice, entry in zip(choices, firsts, strict=True):
        if entry.jpeg:
            return replace(choice.snap, jpeg=entry.jpeg)
    return choices[0].snap


def pick_snapshot(entries: Sequence[OutputEntry], attach: Attach | None = None
                  ) -> Snapshot | None:
    """Newest seq among ``entries`` (newest first) with all types' detections for it merged.

    One frame is pushed to every type of its stream, so results with the same seq describe
    the same picture; their boxes belong on one image. Without a valid result the newest
    frame is shown bare; with no entries at all there is nothing to show. ``attach``
    (:meth:`OutputBroker.attach_frames`) fetches the picture of the frame shown only; a frame
    the store no longer has gives way to the newest older one it still has, and when it has
    none the snapshot's ``jpeg`` is empty.
    """
    if not entries:
        return None
    return _with_frame(_choices(entries), attach)


def latest_snapshot(broker: OutputBroker, stream: str) -> Snapshot | None:
    """:func:`pick_snapshot` of the stream's newest entries, fetching only the picture shown
    (sync: two or three round trips)."""
    return pick_snapshot(broker.latest(stream, SNAPSHOT_SCAN), broker.attach_frames)


def latest_by_type(entries: Sequence[OutputEntry]) -> dict[str, dict[str, Any]]:
    """The newest valid result JSON object of each type among ``entries`` (newest first)."""
    out: dict[str, dict[str, Any]] = {}
    for _, result, raw in _valid(entries):
        out.setdefault(result.type, raw)
    return dict(sorted(out.items()))


def frame_view(frame: int, jpeg: bytes,
               results: Mapping[str, Any]) -> tuple[Snapshot, dict[str, dict[str, Any]]]:
    """A job frame with every type's valid result: the snapshot to draw and the results.

    ``results`` maps a type to its parsed result JSON (as JobStore.frame_results returns);
    an invalid one is left out of both, as the live endpoints skip invalid results.
    """
    valid: dict[str, dict[str, Any]] = {}
    detections: list[Detection] = []
    for infer_type, data in sorted(results.items()):
        try:
            result = result_from_json(data)
        except InvalidMessage as exc:
            log.debug("job frame %d: skipping an invalid %s result: %s", frame, infer_type, exc)
            continue
        valid[infer_type] = data
        detections.extend(result.detections)
    return Snapshot(seq=frame, jpeg=jpeg, detections=tuple(detections),
                    types=tuple(valid)), valid


@dataclass
class SnapshotFollower:
    """Follows one stream's live buffer for one viewer; its calls block, so run them in a pool.

    It keeps the newest few entries itself, so each entry crosses from Redis once, as new,
    instead of on every frame; after a backlog it jumps to the newest entries rather than
    replaying old ones. The JPEG is fetched only for a picture it shows, and kept for the
    next one of the same frame (types publish their results for one frame at different
    moments). The first call shows the current frame at once.
    """

    broker: OutputBroker
    stream: str
    cursor: str = ""  # "" until the window is filled
    window: deque[OutputEntry] = field(default_factory=lambda: deque(maxlen=SNAPSHOT_SCAN))
    shown: tuple[int, tuple[str, ...], str] | None = None
    frame: tuple[str, bytes] = ("", b"")  # (ref, JPEG) of the last frame fetched

    def _catch_up(self, block_ms: int) -> bool:
        """Bring the window up to date; False when nothing new came within ``block_ms``."""
        if self.cursor:
            new = self.broker.read({self.stream: self.cursor}, block_ms=block_ms,
                                   count=FOLLOW_READ)
            if not new:
                return False
            if len(new) < FOLLOW_READ:
                self.window.extend(new)
                self.cursor = new[-1].entry_id
                return True
            # More may wait behind these: skip to the newest instead.
        elif not self.broker.read({self.stream: "0-0"}, block_ms=block_ms, count=1):
            return False  # no output yet
        newest = self.broker.latest(self.stream, SNAPSHOT_SCAN)
        if not newest:
            return False
        self.window.clear()
        self.window.extend(reversed(newest))
        self.cursor = newest[0].entry_id
        return True

    def _attach(self, entries: Sequence[OutputEntry]) -> list[OutputEntry]:
        """:meth:`OutputBroker.attach_frames`, but the last frame fetched is not fetched again."""
        ref, jpeg = self.frame
        known = [replace(e, jpeg=jpeg) if ref and e.ref == ref and not e.jpeg else e
                 for e in entries]
        if not any(e.ref and not e.jpeg for e in known):
            return known
        out = self.broker.attach_frames(known)
        got = next((e for e in out if e.jpeg and e.ref), None)
        if got is not None:
            self.frame = (got.ref, got.jpeg)
        return out

    def next_snapshot(self, block_ms: int) -> Snapshot | None:
        """The newest snapshot once something new arrived; ``None`` after ``block_ms`` without
        news, when the news does not change the picture, or when the store no longer holds
        any of the frames in the window.

        A frame is new when its seq is, or when more types' boxes have arrived for it (types
        publish their results for one frame at different moments).
        """
        if not self._catch_up(block_ms):
            return None
        entries = list(reversed(self.window))
        choices = _choices(entries)
        if not choices:
            return None
        newest = choices[0].snap
        # A bare frame (no valid result) has no seq: its entry id tells frames apart.
        key = (newest.seq, newest.types, entries[0].entry_id if newest.seq < 0 else "")
        if key == self.shown:
            return None
        self.shown = key
        snap = _with_frame(choices, self._attach)
        return snap if snap.jpeg else None
