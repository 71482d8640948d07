"""What ``ei track`` hands on when a frame gives events: the seam between tracking and recording.

The tracker loop builds one :class:`FrameEvents` per frame that has events and gives it to an
:class:`EventHandler`, which stores each event with its snapshot and queues it for the rule's
sinks. The handler must return quickly (a few Redis round trips at most): deliveries to
webhooks and MQTT happen off the tracking path, so a slow or dead receiver never holds up
tracking.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Protocol

from .counting import Event
from .rules import Rule
from .tracker import Track


@dataclass(frozen=True)
class FrameEvents:
    """One frame's events with what a snapshot and a sink need: the frame's JPEG (empty until
    :func:`with_frames` fetched it by ``ref``, its id in the frame store), every track in the
    frame, and the stream's rules (for their sinks)."""

    stream: str
    type: str
    seq: int
    ts: float
    w: int
    h: int
    jpeg: bytes
    events: tuple[Event, ...]
    tracks: tuple[Track, ...]
    rules: tuple[Rule, ...]
    ref: str = ""

#: ``fetch([(stream, ref), ...])`` -> the JPEGs still stored (FrameStore.fetch_unique).
FetchFrames = Callable[[Sequence[tuple[str, str]]], Mapping[tuple[str, str], bytes]]


def with_frames(frames: Sequence[FrameEvents], fetch: FetchFrames) -> list[FrameEvents]:
    """``frames`` with the JPEG of each that has events, all fetched in one call (each frame
    once): only frames with events need a picture. One no longer stored keeps an empty JPEG;
    its events are recorded without a snapshot."""
    wanted = [(f.stream, f.ref) for f in frames if f.events and f.ref and not f.jpeg]
    if not wanted:
        return list(frames)
    found = fetch(wanted)
    return [replace(f, jpeg=found.get((f.stream, f.ref), b""))
            if f.events and f.ref and not f.jpeg else f for f in frames]


class EventHandler(Protocol):
    def handle(self, frame: FrameEvents) -> None:
        """Record the frame's events and queue their deliveries; never blocks on a sink."""
