"""Writing live output as workers do, for tests of its readers."""

from __future__ import annotations

from collections.abc import Sequence

from elastic_inference.core.broker import OutputBroker
from elastic_inference.core.result import Result


def publish(broker: OutputBroker, items: Sequence[tuple[Result, bytes]],
            now: float | None = None, maxlen: int = 64) -> list[str]:
    """Store each distinct ``(stream, seq)``'s JPEG once in the frame store, then publish the
    results referring to it (what a stream service and its workers do together); returns the
    refs, one per item."""
    refs: dict[tuple[str, int], str] = {}
    for result, jpeg in items:
        if (result.stream, result.seq) not in refs:
            refs[(result.stream, result.seq)] = broker.frames.add(result.stream, jpeg, maxlen)
    pairs = [(r, refs[(r.stream, r.seq)]) for r, _ in items]
    broker.publish(pairs, now)
    return [ref for _, ref in pairs]
