"""Puts one stream's results back in ``seq`` order before the tracker sees them.

Several workers handle one stream's frames, so result 41 can be published before result 40.
The buffer holds results until the next expected seq arrives, but never more than ``bound``
of them and never longer than ``timeout`` seconds: then it gives up on the gap and releases
what it holds in order (a frame dropped upstream never arrives). A result older than the
last released one is late: it is dropped and counted, because the tracker has moved on;
one more than ``bound`` behind it means the stream restarted, and starts the order again.
The clock is the caller's (``now``), so the buffer is pure and tests need no sleeps.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field
from typing import Generic, TypeVar

T = TypeVar("T")


@dataclass(order=True)
class _Held(Generic[T]):
    seq: int
    since: float = field(compare=False)
    item: T = field(compare=False)


class ReorderBuffer(Generic[T]):
    """Items in ``seq`` order, waiting at most ``bound`` items or ``timeout`` s for a gap."""

    def __init__(self, bound: int = 16, timeout: float = 0.5) -> None:
        if bound < 1 or timeout < 0:
            raise ValueError("bound must be >= 1 and timeout >= 0")
        self.bound, self.timeout = bound, timeout
        self._heap: list[_Held[T]] = []
        self._seqs: set[int] = set()
        self._next: int | None = None
        self.late = 0  # older than what was released already: dropped
        self.skipped = 0  # seqs given up on (never arrived in time)

    def __len__(self) -> int:
        return len(self._heap)

    def push(self, seq: int, item: T, now: float) -> list[tuple[int, T]]:
        """Add one item; the items now ready, in order (maybe none, maybe several)."""
        if self._next is not None and seq < self._next - self.bound:
            # Far behind: the stream restarted (its seqs start at 0 again), not a late result.
            out = self.flush()
            self._next = None
            return out + self.push(seq, item, now)
        if (self._next is not None and seq < self._next) or seq in self._seqs:
            self.late += 1
            return self.poll(now)
        if self._next is None:
            self._next = seq  # the first seq seen starts the order
        heapq.heappush(self._heap, _Held(seq, now, item))
        self._seqs.add(seq)
        return self.poll(now)

    def poll(self, now: float) -> list[tuple[int, T]]:
        """The items ready at ``now``: call it when no item arrives, so a gap times out."""
        out: list[tuple[int, T]] = []
        while self._heap:
            head = self._heap[0]
            waited = now - min(h.since for h in self._heap)
            if head.seq != self._next and len(self._heap) <= self.bound \
                    and waited < self.timeout:
                break
            heapq.heappop(self._heap)
            self._seqs.discard(head.seq)
            if self._next is not None and head.seq > self._next:
                self.skipped += head.seq - self._next
            self._next = head.seq + 1
            out.append((head.seq, head.item))
        return out

    def flush(self) -> list[tuple[int, T]]:
        """Everything held, in order (the stream ended)."""
        return self.poll(float("inf"))
