"""Each frame's JPEG once per client, whatever the number of inference types.

Every type publishes its own result for a frame to ``ei:out:{stream}``, each entry referring to
the frame's one JPEG in the frame store. The reader turns the first result of a frame newer
than the last frame sent for its stream into a binary message with the JPEG, and every other
result (another type's for a frame already sent, a late one, one whose JPEG the store no longer
has) into a text message without it. Only the JPEGs of the binary messages are fetched, in one
round trip per read.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Container, Sequence
from dataclasses import dataclass
from typing import Any

from ...core.broker import OutputEntry
from ...core.errors import InvalidMessage
from ...core.live import encode_frame, encode_result
from ...core.result import parse_json

log = logging.getLogger(__name__)

#: How far below the last frame sent a seq must be to mean that the stream restarted (it
#: counts from 0 again) rather than a late result, for a result without a capture time; the
#: dashboard uses the same window.
RESTART_GAP = 256

#: Fetches the JPEGs of entries (``OutputBroker.attach_frames``): one round trip.
Attach = Callable[[Sequence[OutputEntry]], list[OutputEntry]]


@dataclass(frozen=True)
class Outgoing:
    """What one ``ei:out`` entry becomes: a binary frame message (with the JPEG), a text
    result message, or nothing (``message`` None: its result is not a JSON object) while its
    stream's cursor still moves past it."""

    stream: str
    entry_id: str
    infer_type: str
    message: bytes | str | None

    @property
    def is_frame(self) -> bool:
        return isinstance(self.message, bytes)


def parse_result(entry: OutputEntry) -> dict[str, Any] | None:
    """The entry's result object; ``None`` when it is not a JSON object (logged at debug:
    workers validate, so this means a foreign writer)."""
    try:
        result = parse_json(entry.result)
    except InvalidMessage:
        log.debug("skipping entry %s of %s: result is not JSON", entry.entry_id, entry.stream)
        return None
    if not isinstance(result, dict):
        log.debug("skipping entry %s of %s: result is not an object", entry.entry_id,
                  entry.stream)
        return None
    return result


def _seq(result: dict[str, Any]) -> int | None:
    seq = result.get("seq")
    return seq if isinstance(seq, int) and not isinstance(seq, bool) else None


def _ts(result: dict[str, Any]) -> float | None:
    ts = result.get("ts_capture")
    if isinstance(ts, (int, float)) and not isinstance(ts, bool) and math.isfinite(ts):
        return float(ts)
    return None


class FrameJoiner:
    """Decides which entries carry their frame's JPEG; remembers, per stream, the seq and
    capture time of the last frame sent (forgotten with the stream)."""

    def __init__(self) -> None:
        self.last_sent: dict[str, tuple[int, float | None]] = {}

    def retain(self, streams: Container[str]) -> None:
        """Forget the streams not in ``streams`` (no longer live)."""
        for gone in [s for s in self.last_sent if s not in streams]:
            del self.last_sent[gone]

    def clear(self) -> None:
        """Forget every stream (the reader starts again at the newest entries)."""
        self.last_sent.clear()

    def _first(self, entry: OutputEntry, seq: int | None, ts: float | None) -> bool:
        """Whether ``entry`` is the first result of a frame newer than the last one sent;
        if so, that frame becomes the last one sent. A lower seq captured later means the
        stream restarted (a late result of an older frame was captured earlier); without
        capture times, a seq more than :data:`RESTART_GAP` lower does."""
        if not entry.ref or seq is None:
            return False
        last = self.last_sent.get(entry.stream)
        if last is not None and seq <= last[0]:
            last_seq, last_ts = last
            restarted = (seq < last_seq and ts > last_ts if ts is not None and last_ts is not None
                         else seq < last_seq - RESTART_GAP)
            if not restarted:
                return False
        self.last_sent[entry.stream] = (seq, ts)
        return True

    def join(self, entries: Sequence[OutputEntry], attach: Attach) -> list[Outgoing]:
        """One :class:`Outgoing` per entry, in order; ``attach`` is called once, for the
        entries that become frames, if any. A frame the store no longer has goes as text."""
        parsed: list[tuple[OutputEntry, dict[str, Any] | None, bool]] = []
        for entry in entries:
            result = parse_result(entry)
            first = result is not None and self._first(entry, _seq(result), _ts(result))
            parsed.append((entry, result, first))
        firsts = [e for e, _, first in parsed if first]
        jpegs = {(e.stream, e.entry_id): e.jpeg for e in attach(firsts)} if firsts else {}
        out: list[Outgoing] = []
        for entry, result, first in parsed:
            if result is None:
                out.append(Outgoing(entry.stream, entry.entry_id, "", None))
                continue
            infer_type = result.get("type")
            infer_type = infer_type if isinstance(infer_type, str) else ""
            jpeg = jpegs.get((entry.stream, entry.entry_id), b"") if first else b""
            message: bytes | str = (
                encode_frame(entry.stream, entry.entry_id, result, jpeg) if jpeg
                else encode_result(entry.stream, entry.entry_id, result))
            out.append(Outgoing(entry.stream, entry.entry_id, infer_type, message))
        return out
