"""How many result messages per second one core can track and count (``ei bench`` calls it).

One message is what ``ei track`` does per result: decode and validate the result JSON, put it
through the reorder buffer, update the stream's tracker and its counter. CPU time of this
process is the clock (``time.process_time``), so the figure is per core and a loaded machine
lowers it less than wall time would.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence

from ..result import Result, decode_result
from .counting import Counter, Event
from .reorder import ReorderBuffer
from .rules import Rule
from .tracker import Track, Tracker

#: Called for each frame in order: its seq, result, the tracker's tracks and the counter's events.
FrameHook = Callable[[int, Result, list[Track], list[Event]], None]


def track_results(results: Iterable[Result], rules: Sequence[Rule] = (),
                  on_frame: FrameHook | None = None,
                  clock: Callable[[Result], float] | None = None) -> Counter:
    """One stream's results (in any order within the buffer's bound) through a reorder buffer,
    a fresh tracker and counter, as ``ei track`` handles them; the counter. ``clock`` gives a
    result's time (default: its ``ts_capture``; a job uses its frame number and the video's
    fps); ``on_frame`` sees every frame's tracks and events in seq order."""
    tracker, counter = Tracker(), Counter(rules)
    buffer: ReorderBuffer[Result] = ReorderBuffer()

    def feed(ready: list[tuple[int, Result]]) -> None:
        for seq, result in ready:
            ts = result.ts_capture if clock is None else clock(result)
            tracks = tracker.update(result.detections, seq, ts)
            events = counter.update(tracks, seq, ts)
            if on_frame is not None:
                on_frame(seq, result, tracks, events)

    for result in results:
        feed(buffer.push(result.seq, result, 0.0))
    feed(buffer.flush())
    return counter


def replay(messages: Iterable[bytes], rules: Sequence[Rule] = ()) -> Counter:
    """One stream's encoded results through :func:`track_results` (decoding is part of the
    cost ``ei track`` pays per message); the counter."""
    return track_results((decode_result(raw) for raw in messages), rules)


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
