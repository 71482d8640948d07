"""TrackService in-process on a real Redis: a claimed stream's frames with events reach the
event handler with what a snapshot needs; settings that would let a lease lapse are refused;
a clean stop gives the leases back."""

from __future__ import annotations

import threading

import pytest
import redis
from prometheus_client import CollectorRegistry

from elastic_inference.core import keys
from elastic_inference.core.analytics.events import FrameEvents
from elastic_inference.core.analytics.rules import Rule
from elastic_inference.core.broker import OutputBroker
from elastic_inference.core.errors import ConfigError
from elastic_inference.core.metrics import TrackMetrics
from elastic_inference.core.registry import StreamRegistry
from elastic_inference.core.result import Detection, Result
from elastic_inference.core.rulestore import RuleStore
from elastic_inference.core.settings import TrackSettings, parse_settings
from elastic_inference.services.track import TrackService
from tests.outputs import publish

GATE = Rule("gate", "line", ((0.5, 0.0), (0.5, 1.0)), ("person",))


class Recorder:
    """A fake of the event recorder: keeps what it is handed."""

    def __init__(self) -> None:
        self.frames: list[FrameEvents] = []

    def handle(self, frame: FrameEvents) -> None:
        self.frames.append(frame)


def test_a_claim_interval_above_half_the_lease_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"EI_CLAIM_INTERVAL .* EI_TRACK_LEASE"):
        parse_settings(TrackSettings, ["--track-lease", "2", "--claim-interval", "1.5"], {})


def test_frames_with_events_reach_the_handler(redis_url: str,
                                              redis_client: redis.Redis) -> None:
    settings = parse_settings(TrackSettings, ["--redis-url", redis_url, "--replica-id", "r1"],
                              {})
    registry = CollectorRegistry()
    recorder = Recorder()
    service = TrackService(settings, redis_client, TrackMetrics(registry), threading.Event(),
                           recorder)
    RuleStore(redis_client).put("cam", (GATE,))
    StreamRegistry(redis_client).beat("cam", {"types": ["people"]})
    service.turn()
    assert list(service.owned) == ["cam"]
    assert redis_client.get(keys.track_lease("cam")) == b"r1"
    # Rule series exist at zero before any crossing.
    assert registry.get_sample_value("ei_line_crossings_total", {
        "stream": "cam", "rule": "gate", "direction": "b->a", "label": "person"}) == 0
    broker = OutputBroker(redis_client)
    for seq in range(20):
        x = 0.3 + 0.02 * seq
        publish(broker, [(Result("cam", "people", seq, 100.0 + seq, 100.0 + seq, "m", "CPU", 640,
                                480, (Detection("person", 0.9, (x - 0.03, 0.4, x + 0.03, 0.6)),)),
                         b"jpeg-%d" % seq)])
    for _ in range(10):
        service.turn()
        if service.messages == 20:
            break
    assert service.messages == 20
    (frame,) = recorder.frames
    (event,) = frame.events
    assert (event.kind, event.rule, event.direction, event.label) == ("cross", "gate", "b->a",
                                                                      "person")
    assert frame.jpeg == b"jpeg-%d" % frame.seq and (frame.w, frame.h) == (640, 480)
    assert event.track_id in {t.id for t in frame.tracks} and frame.rules == (GATE,)
    assert registry.get_sample_value("ei_line_crossings_total", {
        "stream": "cam", "rule": "gate", "direction": "b->a", "label": "person"}) == 1
    service.shutdown()
    assert redis_client.get(keys.track_lease("cam")) is None
    assert redis_client.zcard(keys.track_replicas()) == 0
