"""What a viewer sees of a stream: the newest frame with every type's boxes for that frame.

Types publish their results for one frame to ``ei:out:{stream}`` separately and interleaved,
so the picture is assembled from the newest few entries. Drawing the boxes is left to the
caller (``engine/annotate.py``): core does not decode images.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
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


def pick_snapshot(entries: Sequence[OutputEntry]) -> Snapshot | None:
    """Newest seq among ``entries`` (newest first) with all types' detections for it merged.

    One frame is pushed to every type of its stream, so results with the same seq describe
    the same picture; their boxes belong on one image. Without a valid result the newest
    frame is shown bare; with no entries at all there is nothing to show.
    """
    if not entries:
        return None
    valid = _valid(entries)
    if not valid:
        return Snapshot(seq=-1, jpeg=entries[0].jpeg, detections=(), types=())
    seq = max(r.seq for _, r, _ in valid)
    same = [(e, r) for e, r, _ in valid if r.seq == seq]
    seen: set[str] = set()
    detections: list[Detection] = []
    for _, r in same:  # newest first: a type that published twice counts once
        if r.type not in seen:
            seen.add(r.type)
            detections.extend(r.detections)
    jpeg = next((e.jpeg for e, _ in same if e.jpeg), entries[0].jpeg)
    return Snapshot(seq=seq, jpeg=jpeg, detections=tuple(detections), types=tuple(sorted(seen)))


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

    It keeps the newest few entries itself, so each entry (JPEG included) crosses from Redis
    once, as new, instead of on every frame; after a backlog it jumps to the newest entries
    rather than replaying old ones. The first call shows the current frame at once.
    """

    broker: OutputBroker
    stream: str
    cursor: str = ""  # "" until the window is filled
    window: deque[OutputEntry] = field(default_factory=lambda: deque(maxlen=SNAPSHOT_SCAN))
    shown: tuple[int, tuple[str, ...], str] | None = None

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

    def next_snapshot(self, block_ms: int) -> Snapshot | None:
        """The newest snapshot once something new arrived; ``None`` after ``block_ms`` without
        news, or when the news does not change the picture.

        A frame is new when its seq is, or when more types' boxes have arrived for it (types
        publish their results for one frame at different moments).
        """
        if not self._catch_up(block_ms):
            return None
        entries = list(reversed(self.window))
        snap = pick_snapshot(entries)
        if snap is None:
            return None
        # A bare frame (no valid result) has no seq: its entry id tells frames apart.
        key = (snap.seq, snap.types, entries[0].entry_id if snap.seq < 0 else "")
        if key == self.shown:
            return None
        self.shown = key
        return snap
