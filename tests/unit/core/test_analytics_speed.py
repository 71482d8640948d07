"""replay(): result JSON, out of order, through buffer, tracker and counter; tracker_rate."""

from __future__ import annotations

import pytest

from elastic_inference.core.analytics.rules import Rule
from elastic_inference.core.analytics.speed import replay, tracker_rate
from elastic_inference.core.result import Detection, Result

LINE = Rule("gate", "line", ((0.5, 0.0), (0.5, 1.0)))


def walk() -> list[bytes]:
    """One person walking right across the frame, as result JSON of 30 frames."""
    return [Result("cam", "people", seq, seq / 10, seq / 10, "m", "CPU", 640, 480,
                   (Detection("person", 0.9, (x - 0.03, 0.4, x + 0.03, 0.6)),)).encode()
            for seq, x in ((s, 0.2 + 0.02 * s) for s in range(30))]


def test_replay_puts_results_back_in_order() -> None:
    messages = walk()
    shuffled = [messages[i ^ 1] for i in range(len(messages))]  # every pair swapped
    for ms in (messages, shuffled):
        assert replay(ms, [LINE]).crossings == {("gate", "b->a", "person"): 1}


def test_tracker_rate_needs_messages_and_replays_them() -> None:
    with pytest.raises(ValueError):
        tracker_rate([])
    assert tracker_rate(walk(), [LINE], min_seconds=0.01) > 0
