"""Events recorded by the handler ``ei track`` calls, and delivered: to a real HTTP receiver on
loopback (signature checked with the secret), through a real mosquitto broker to a paho
subscriber, each with its snapshot; with the receiver failing or down, retries, then counted
failures and drops, while ``handle()`` keeps returning at once (doc/analytics.md, "Sinks")."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from typing import Any, cast

import cv2
import numpy as np
import pytest
import redis
from prometheus_client import CollectorRegistry

from elastic_inference.core.analytics.counting import Event
from elastic_inference.core.analytics.events import FrameEvents
from elastic_inference.core.analytics.rules import Rule, Sink
from elastic_inference.core.analytics.tracker import Track
from elastic_inference.core.eventhandler import RecordingHandler, delivery_queues
from elastic_inference.core.eventstore import EventQuery, EventStore
from elastic_inference.core.metrics import EventMetrics
from elastic_inference.core.mqttsink import MqttPublisher
from elastic_inference.core.settings import EventSettings
from elastic_inference.core.webhook import SIGNATURE_HEADER, TIMESTAMP_HEADER, WebhookSender
from elastic_inference.engine.annotate import track_snapshot
from tests.mosquitto_server import MosquittoServer, Subscriber
from tests.processes import wait_for
from tests.redis_server import free_port
from tests.webhook_receiver import Receiver, signature_of

pytestmark = pytest.mark.integration

SECRET = "webhook-secret-for-the-tests-0123456789"
TRACKS = (Track(7, "person", (0.1, 0.2, 0.3, 0.9), 0.9, 12, 12, 0),
          Track(8, "person", (0.6, 0.2, 0.8, 0.9), 0.8, 4, 4, 0))


def frame_jpeg() -> bytes:
    ok, buf = cv2.imencode(".jpg", np.full((120, 160, 3), 90, dtype=np.uint8))
    assert ok
    return buf.tobytes()


def frame(rule: Rule, seq: int = 42, events: tuple[Event, ...] | None = None) -> FrameEvents:
    evs = events or (Event("enter", rule.name, 7, "person", seq, 1764670000.5 + seq),)
    return FrameEvents("cam1", "people", seq, 1764670000.5 + seq, 160, 120, frame_jpeg(), evs,
                       TRACKS, (rule,))


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver().start()
    yield r
    r.stop()


def settings(**extra: Any) -> EventSettings:
    base: dict[str, Any] = {"webhook_secret": SECRET, "source_allow": ("127.0.0.1",),
                            "webhook_timeout": 5.0}
    return EventSettings(**{**base, **extra})


def sample(registry: CollectorRegistry, sink: str, outcome: str) -> float:
    value = registry.get_sample_value("ei_event_deliveries_total",
                                      {"sink": sink, "outcome": outcome})
    return value or 0.0


def build(client: redis.Redis, s: EventSettings) -> tuple[RecordingHandler, CollectorRegistry]:
    registry = CollectorRegistry()
    metrics = EventMetrics(registry)
    queues = delivery_queues(s, metrics)
    return RecordingHandler(EventStore(client), track_snapshot, queues, metrics), registry


def close(handler: RecordingHandler) -> None:
    for queue in handler.queues.values():
        queue.close()


def test_a_webhook_gets_each_event_signed_with_its_snapshot(
        redis_client: redis.Redis, receiver: Receiver) -> None:
    rule = Rule("door", "zone", ((0.0, 0.0), (1.0, 0.0), (1.0, 1.0)),
                sinks=(Sink("webhook", receiver.url),))
    handler, registry = build(redis_client, settings())
    try:
        two = (Event("leave", "door", 7, "person", 43, 1.0), Event("enter", "door", 8, "person",
                                                                    43, 1.0))
        handler.handle(frame(rule))
        handler.handle(frame(rule, 43, two))
        wait_for(lambda: len(receiver.posts) == 3, 30, "three webhook deliveries")
        assert sample(registry, "webhook", "delivered") == 3
    finally:
        close(handler)
    store = EventStore(redis_client)
    stored = {e.id: e for e in store.query(EventQuery()).events}
    assert len(stored) == 3
    for headers, body in receiver.posts:
        assert headers[SIGNATURE_HEADER] == signature_of(SECRET, headers, body)
        assert abs(int(headers[TIMESTAMP_HEADER]) - time.time()) < 120
        assert headers["Content-Type"] == "application/json"
        payload = json.loads(body)
        snapshot = base64.b64decode(payload.pop("snapshot_jpeg_base64"))
        event = stored[payload["id"]]
        assert payload == event.to_json()
        assert snapshot == store.snapshot(event.id) and snapshot[:2] == b"\xff\xd8"
    by_track = {json.loads(b)["track_id"]: json.loads(b) for _, b in receiver.posts[1:]}
    # Two tracks in one frame: each event's snapshot highlights its own track.
    assert by_track[7]["snapshot_jpeg_base64"] != by_track[8]["snapshot_jpeg_base64"]
    assert by_track[8]["box"] == list(TRACKS[1].box)
    assert registry.get_sample_value("ei_events_recorded_total", {"kind": "enter"}) == 2


def test_a_failing_receiver_is_retried_then_counted_as_failed(
        redis_client: redis.Redis, receiver: Receiver) -> None:
    receiver.status = 503
    rule = Rule("gate", "line", ((0.5, 0.0), (0.5, 1.0)), sinks=(Sink("webhook", receiver.url),))
    handler, registry = build(redis_client, settings(webhook_tries=3))
    try:
        handler.handle(frame(rule, events=(Event("cross", "gate", 7, "person", 42, 1.0,
                                                 "a->b"),)))
        wait_for(lambda: sample(registry, "webhook", "failed") == 1, 60, "a counted failure")
        assert len(receiver.posts) == 3  # three tries, then given up
        assert sample(registry, "webhook", "delivered") == 0
        # The event itself is stored whatever its delivery did.
        assert [e.kind for e in EventStore(redis_client).query(EventQuery()).events] == ["cross"]
    finally:
        close(handler)


def test_a_dead_receiver_never_holds_up_handle(redis_client: redis.Redis) -> None:
    dead = f"http://127.0.0.1:{free_port()}/hook"  # nothing listens there
    rule = Rule("door", "zone", ((0.0, 0.0), (1.0, 0.0), (1.0, 1.0)),
                sinks=(Sink("webhook", dead),))
    # Each delivery takes at least 0.5 * 1 + 0.5 * 2 = 1.5 s of backoff before it fails;
    # handling the 50 events takes under 0.1 s, and must take under 1 s (the check after it
    # that none has failed yet needs the rest).
    s = settings(webhook_tries=3, sink_queue=2)
    handler, registry = build(redis_client, s)
    cast(WebhookSender, handler.queues["webhook"].send).backoff = 1.0
    try:
        started = time.monotonic()
        for seq in range(50):
            handler.handle(frame(rule, seq))
        took = time.monotonic() - started
        assert took < 1.0, f"50 events took {took:.1f} s to handle"
        assert sample(registry, "webhook", "failed") == 0  # none has even failed yet
        assert len(EventStore(redis_client).query(EventQuery(limit=200)).events) == 50
        # Two in flight, two waiting, the other 46 dropped (the oldest first) and counted.
        wait_for(lambda: sample(registry, "webhook", "dropped") == 46, 10, "46 drops")
        wait_for(lambda: sample(registry, "webhook", "failed") == 4, 120, "4 failures")
        assert registry.get_sample_value("ei_event_queue_length", {"sink": "webhook"}) == 0
    finally:
        close(handler)


def test_webhook_to_an_address_not_allowed_is_refused_at_delivery(
        redis_client: redis.Redis, receiver: Receiver) -> None:
    rule = Rule("door", "zone", ((0.0, 0.0), (1.0, 0.0), (1.0, 1.0)),
                sinks=(Sink("webhook", receiver.url),))
    handler, registry = build(redis_client, settings(source_allow=("203.0.113.0/24",)))
    try:
        handler.handle(frame(rule))
        wait_for(lambda: sample(registry, "webhook", "failed") == 1, 30, "a refusal")
        assert receiver.posts == []
    finally:
        close(handler)


@pytest.fixture
def broker() -> Iterator[MosquittoServer]:
    server = MosquittoServer().start()
    yield server
    server.stop()


def test_mqtt_gets_the_event_json_with_its_snapshot(redis_client: redis.Redis,
                                                    broker: MosquittoServer) -> None:
    subscriber = Subscriber(broker, "site/cam1/#")
    rule = Rule("door", "zone", ((0.0, 0.0), (1.0, 0.0), (1.0, 1.0)),
                sinks=(Sink("mqtt", "site/cam1/door"),))
    handler, registry = build(redis_client, settings(mqtt_url=broker.url))
    try:
        publisher = cast(MqttPublisher, handler.queues["mqtt"].send)
        wait_for(lambda: publisher.connected, 15, "the publisher to connect")
        handler.handle(frame(rule))
        wait_for(lambda: subscriber.messages, 15, "the MQTT message")
        wait_for(lambda: sample(registry, "mqtt", "delivered") == 1, 15, "a counted delivery")
    finally:
        close(handler)
        subscriber.close()
    topic, body = subscriber.messages[0]
    payload = json.loads(body)
    snapshot = base64.b64decode(payload.pop("snapshot_jpeg_base64"))
    event = EventStore(redis_client).query(EventQuery()).events[0]
    assert topic == "site/cam1/door" and payload == event.to_json()
    assert snapshot == EventStore(redis_client).snapshot(event.id)
    assert broker.password not in broker.log()


def test_mqtt_with_a_wrong_password_counts_failures(redis_client: redis.Redis,
                                                   broker: MosquittoServer) -> None:
    wrong = broker.url.replace(broker.password, "not-the-password-at-all")
    rule = Rule("door", "zone", ((0.0, 0.0), (1.0, 0.0), (1.0, 1.0)),
                sinks=(Sink("mqtt", "site/cam1/door"),))
    handler, registry = build(redis_client, settings(mqtt_url=wrong))
    try:
        handler.handle(frame(rule))
        wait_for(lambda: sample(registry, "mqtt", "failed") == 1, 15, "a counted failure")
    finally:
        close(handler)
