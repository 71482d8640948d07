"""How many result messages per second one core can track and count (``ei bench`` calls it).

One message is what ``ei track`` does per result: decode and validate the result JSON, put it
through the reorder buffer, update the stream's tracker and its counter. CPU time of this
process is the clock (``time.process_time``), so the figure is per core and a loaded machine
lowers it less than wall time would.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from ..result import Result, decode_result
from .counting import Counter
from .reorder import ReorderBuffer
from .rules import Rule
from .tracker import Tracker


def tracker_rate(messages: Sequence[bytes], rules: Sequence[Rule] = (),
                 min_seconds: float = 1.0) -> float:
    """Messages per CPU second over ``messages`` (encoded results of one stream, in any
    order), replayed (a fresh tracker each time) until ``min_seconds`` of CPU time passed."""
    if not messages:
        raise ValueError("no messages to replay")
    done = 0
    start = time.process_time()
    while True:
        tracker, counter = Tracker(), Counter(rules)
        buffer: ReorderBuffer[Result] = ReorderBuffer()
        for raw in messages:
            result = decode_result(raw)
            for seq, ready in buffer.push(result.seq, result, 0.0):
                tracks = tracker.update(ready.detections, seq, ready.ts_capture)
                counter.update(tracks, seq, ready.ts_capture)
            done += 1
        spent = time.process_time() - start
        if spent >= min_seconds:
            return done / spent
