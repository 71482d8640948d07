"""Pacing of the frames a stream sends."""

from __future__ import annotations

import time
from collections.abc import Callable


class Pacer:
    """A drift-free send schedule: slot ``k`` is due at ``start + k / fps``.

    Slots are computed from the schedule, not from the last send, so sleep and encode jitter
    does not accumulate. Callers never sleep when behind; when more than one period late the
    schedule re-anchors at now instead of bursting to catch up. ``fps <= 0`` means every
    frame is due at once (the source paces itself).
    """

    def __init__(self, fps: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.period = 1.0 / fps if fps > 0 else 0.0
        self.clock = clock
        self._next: float | None = None

    def due_in(self) -> float:
        """Seconds until the next slot; 0 when it is due or overdue."""
        if self._next is None or self.period == 0:
            return 0.0
        return max(0.0, self._next - self.clock())

    def mark(self) -> None:
        """Consume the current slot (a frame was taken)."""
        now = self.clock()
        if self._next is None or now - self._next > self.period:
            self._next = now
        self._next += self.period
