"""What ``ei track`` hands on when a frame gives events: the seam between tracking and recording.

The tracker loop builds one :class:`FrameEvents` per frame that has events and gives it to an
:class:`EventHandler`, which stores each event with its snapshot and queues it for the rule's
sinks. The handler must return quickly (a few Redis round trips at most): deliveries to
webhooks and MQTT happen off the tracking path, so a slow or dead receiver never holds up
tracking.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from .counting import Event
from .rules import Rule
from .tracker import Track


@dataclass(frozen=True)
class FrameEvents:
    """One frame's events with what a snapshot and a sink need: the frame's JPEG as the worker
    passed it through, every track in the frame, and the stream's rules (for their sinks)."""

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


class EventHandler(Protocol):
    def handle(self, frame: FrameEvents) -> None:
        """Record the frame's events and queue their deliveries; never blocks on a sink."""
