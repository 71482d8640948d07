"""How many result messages per second one core can track and count (``ei bench`` calls it).

One message is what ``ei track`` does per result: decode and validate the result JSON, put it
through the reorder buffer, update the stream's tracker and its counter. CPU time of this
process is the clock (``time.process_time``), so the figure is per core and a loaded machine
lowers it less than wall time would.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence

from ..result import Result, decode_result
from .counting import Counter
from .reorder import ReorderBuffer
from .rules import Rule
from .tracker import Tracker


def replay(messages: Iterable[bytes], rules: Sequence[Rule] = ()) -> Counter:
    """One stream's encoded results (in any order within the buffer's bound) through a
    reorder buffer, a fresh tracker and counter, as ``ei track`` handles them; the counter."""
    tracker, counter = Tracker(), Counter(rules)
    buffer: ReorderBuffer[Result] = ReorderBuffer()

    def feed(ready: list[tuple[int, Result]]) -> None:
        for seq, result in ready:
            counter.update(tracker.update(result.detections, seq, result.ts_capture),
                           seq, result.ts_capture)

    for raw in messages:
        result = decode_result(raw)
        feed(buffer.push(result.seq, result, 0.0))
    feed(buffer.flush())
    return counter


def tracker_rate(messages: Sequence[bytes], rules: Sequence[Rule] = (),
                 min_seconds: float = 1.0) -> float:
    """Messages per CPU second of :func:`replay` over ``messages``, replayed until
    ``min_seconds`` of CPU time have passed."""
    if not messages:
        raise ValueError("no messages to replay")
    done = 0
    start = time.process_time()
    while True:
        replay(messages, rules)
        done += len(messages)
        spent = time.process_time() - start
        if spent >= min_seconds:
            return done / spent
