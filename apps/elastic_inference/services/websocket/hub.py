"""Per-client mailboxes and the hub that offers each live message, encoded once, to them.

A mailbox keeps only the latest pending frame per stream, and the latest result text and
tracks message per stream and inference type, and has its own sender task, so a slow browser
loses intermediate frames (counted as skipped) instead of delaying the reader or any other
client.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable, Iterable

from ...core.live import streams_text
from ...core.metrics import WebsocketMetrics

#: Control messages (errors) queued per client before the oldest are dropped.
MAX_PENDING_TEXT = 8

Send = Callable[[str | bytes], Awaitable[None]]

#: Kinds of live message a mailbox keeps the latest of, each in its own slot: a frame (binary,
#: one slot per stream), a result without its JPEG and a tracks message (text, one slot per
#: stream and type).
FRAME, RESULT, TRACKS = "frame", "result", "tracks"


class Mailbox:
    """What one client has yet to receive: the latest frame per stream, the latest result
    and tracks message per (stream, type), plus control texts. Results are keyed by type
    because each type publishes its own result for a frame; keyed by stream alone, one type's
    boxes would routinely replace another's. Only frames count in the sent and skipped metrics.

    Pending messages go out in the order they were last offered (a replaced one moves to the
    end), so a result of seq N never overtakes the frame of seq N: the reader offers the frame
    first, and a newer frame that replaces it comes after any older result.

    ``offer`` never awaits, so the fan-out loop is never held up by this client; the sender
    task (``run``) drains the mailbox at the client's own pace.
    """

    def __init__(self, send: Send, metrics: WebsocketMetrics | None = None,
                 name: str = "client") -> None:
        self.send = send
        self.metrics = metrics
        self.name = name
        self.subscription: frozenset[str] | None = None
        self.sent = 0
        self.skipped = 0
        self._frames: dict[tuple[str, str, str], str | bytes] = {}
        self._streams: str | None = None
        self._texts: deque[str] = deque(maxlen=MAX_PENDING_TEXT)
        self._wake = asyncio.Event()

    def wants(self, stream: str) -> bool:
        return self.subscription is None or stream in self.subscription

    def subscribe(self, subscription: frozenset[str] | None) -> None:
        """Change the subscription and forget pending entries the client no longer wants."""
        self.subscription = subscription
        for key in [k for k in self._frames if not self.wants(k[0])]:
            del self._frames[key]

    def offer(self, stream: str, message: str | bytes, infer_type: str = "",
              kind: str = FRAME) -> None:
        """Queue ``message``; an unsent older one of the same slot (stream, type and kind;
        frames: stream alone) is replaced and counted as skipped."""
        key = (stream, "" if kind == FRAME else infer_type, kind)
        if self._frames.pop(key, None) is not None:
            self.skipped += 1
            if self.metrics is not None and kind == FRAME:
                self.metrics.skipped.inc()
        self._frames[key] = message
        self._wake.set()

    def offer_streams(self, text: str) -> None:
        """Queue a stream-list message; only the newest unsent one is kept."""
        self._streams = text
        self._wake.set()

    def post_text(self, text: str) -> None:
        """Queue a control text (an error reply); the oldest is dropped beyond a few."""
        self._texts.append(text)
        self._wake.set()

    @property
    def pending(self) -> int:
        return len(self._frames) + len(self._texts) + (self._streams is not None)

    async def run(self) -> None:
        """Send whatever is pending (stream list, control texts, then live messages in
        offer order) until the connection closes."""
        while True:
            await self._wake.wait()
            self._wake.clear()
            if self._streams is not None:
                text, self._streams = self._streams, None
                await self.send(text)
            while self._texts:
                await self.send(self._texts.popleft())
            frames, self._frames = self._frames, {}
            for (_, _, kind), message in frames.items():
                await self.send(message)
                self.sent += 1
                if self.metrics is not None and kind == FRAME:
                    self.metrics.sent.inc()


class Hub:
    """The set of connected clients; dispatches entries and stream lists to their mailboxes."""

    def __init__(self, metrics: WebsocketMetrics | None = None) -> None:
        self.metrics = metrics
        self.clients: set[Mailbox] = set()
        self.streams: tuple[str, ...] = ()
        self.changed = asyncio.Event()

    def add(self, box: Mailbox) -> None:
        self.clients.add(box)
        box.offer_streams(streams_text(self.streams))
        self._count()

    def remove(self, box: Mailbox) -> None:
        self.clients.discard(box)
        self._count()

    def _count(self) -> None:
        if self.metrics is not None:
            self.metrics.clients.set(len(self.clients))
        self.changed.set()

    def dispatch(self, stream: str, message: str | bytes, infer_type: str = "",
                 kind: str = FRAME) -> int:
        """Offer ``message`` to every client subscribed to ``stream``; returns how many."""
        n = 0
        for box in self.clients:
            if box.wants(stream):
                box.offer(stream, message, infer_type, kind)
                n += 1
        return n

    def set_streams(self, streams: Iterable[str]) -> bool:
        """Record the live stream list and tell every client when it changed."""
        new = tuple(sorted(streams))
        if new == self.streams:
            return False
        self.streams = new
        text = streams_text(new)
        for box in self.clients:
            box.offer_streams(text)
        return True
