"""A real ``ei track`` process records the events of a stream's rules with snapshots and
delivers them: to a webhook receiver on loopback (signature checked with the secret) and
through a real mosquitto broker to a subscriber; with the receiver down, deliveries are
retried, then counted as failed, while the stream's tracks keep coming."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator

import cv2
import numpy as np
import pytest
import redis

from elastic_inference.core import keys
from elastic_inference.core.analytics.rules import Rule, Sink
from elastic_inference.core.eventstore import EventQuery, EventStore
from elastic_inference.core.rulestore import RuleStore
from elastic_inference.core.webhook import SIGNATURE_HEADER
from tests.mosquitto_server import MosquittoServer, Subscriber
from tests.processes import Service, wait_for
from tests.redis_server import free_port
from tests.track_feed import FakeStream, entries, metrics
from tests.webhook_receiver import Receiver, signature_of

pytestmark = pytest.mark.integration

SECRET = "webhook-secret-of-the-track-tests-0123456789"
TOPIC = "ei/tests/gate"
LINE = ((0.5, 0.0), (0.5, 1.0))


def frame_jpeg() -> bytes:
    image = np.full((240, 320, 3), 120, dtype=np.uint8)
    ok, buf = cv2.imencode(".jpg", image)
    assert ok
    return buf.tobytes()


def decodes(jpeg: bytes) -> bool:
    return cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR) is not None


@pytest.fixture
def mosquitto() -> Iterator[MosquittoServer]:
    server = MosquittoServer().start()
    yield server
    server.stop()


def start_track(redis_url: str, mqtt_url: str = "", tries: int = 3) -> Service:
    env = {"EI_REDIS_URL": redis_url, "EI_WEBHOOK_SECRET": SECRET,
           "EI_SOURCE_ALLOW": "127.0.0.1", "EI_WEBHOOK_TRIES": str(tries)}
    if mqtt_url:
        env["EI_MQTT_URL"] = mqtt_url
    return Service(["track", "--track-lease", "3", "--replica-id", "t1"], env)


def failed(service: Service) -> float:
    return metrics(service).get(
        ("ei_event_deliveries_total", (("outcome", "failed"), ("sink", "webhook"))), 0.0)


def test_events_reach_a_webhook_and_mqtt_with_their_snapshot(
        redis_url: str, redis_client: redis.Redis, mosquitto: MosquittoServer) -> None:
    receiver = Receiver().start()
    subscriber = Subscriber(mosquitto, TOPIC)
    RuleStore(redis_client).put("cam1", (Rule("gate", "line", LINE, ("person",), sinks=(
        Sink("webhook", receiver.url), Sink("mqtt", TOPIC))),))
    track = start_track(redis_url, mosquitto.url)
    stream = FakeStream(redis_url, "cam1", jpeg=frame_jpeg())
    stream.start()
    try:
        wait_for(lambda: receiver.posts and subscriber.messages, 60,
                 "an event by webhook and by MQTT")
    finally:
        stream.stop()
        track.stop()
        subscriber.close()
        receiver.stop()
    store = EventStore(redis_client)
    headers, body = receiver.posts[0]
    assert headers[SIGNATURE_HEADER] == signature_of(SECRET, headers, body)
    for payload in (json.loads(body), json.loads(subscriber.messages[0][1])):
        snapshot = base64.b64decode(payload.pop("snapshot_jpeg_base64"))
        assert decodes(snapshot), "the snapshot is a picture"
        assert (payload["stream"], payload["rule"], payload["kind"]) == ("cam1", "gate", "cross")
        assert payload["direction"] in ("a->b", "b->a")
        stored = store.query(EventQuery(stream="cam1")).events
        assert payload["id"] in {e.id for e in stored}
        assert store.snapshot(payload["id"]) == snapshot
    assert subscriber.messages[0][0] == TOPIC


def test_a_dead_receiver_is_retried_then_counted_and_tracking_goes_on(
        redis_url: str, redis_client: redis.Redis) -> None:
    dead = f"http://127.0.0.1:{free_port()}/hook"  # nothing listens there
    RuleStore(redis_client).put("cam1", (Rule("gate", "line", LINE, (), sinks=(
        Sink("webhook", dead),)),))
    track = start_track(redis_url, tries=2)
    stream = FakeStream(redis_url, "cam1", jpeg=frame_jpeg())
    stream.start()
    try:
        wait_for(lambda: EventStore(redis_client).query(EventQuery()).events, 60,
                 "the first event")
        wait_for(lambda: failed(track) >= 1, 60, "a counted webhook failure")
        # While deliveries were being retried and failing, the tracks kept up with the
        # stream: the newest tracks entry is within 3 s (30 frames) of the newest frame.
        newest = entries(redis_client, "cam1")[-1]["seq"]
        assert newest >= stream.seq - 30, (newest, stream.seq)
        assert redis_client.xlen(keys.tracks("cam1")) > 0
        assert "webhook" in track.output() and SECRET not in track.output()
    finally:
        stream.stop()
        track.stop()
