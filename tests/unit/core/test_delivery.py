"""The delivery queue: never blocks, drops the oldest when full, counts every outcome; the
MQTT URL parser; the webhook signature."""

from __future__ import annotations

import hashlib
import hmac
import threading
from collections import Counter

import pytest

from elastic_inference.core.delivery import (
    DELIVERED,
    DROPPED,
    FAILED,
    Delivery,
    DeliveryQueue,
    MqttTarget,
    parse_mqtt_url,
)
from elastic_inference.core.webhook import sign
from tests.processes import wait_for


class Tally:
    def __init__(self) -> None:
        self.outcomes: Counter[tuple[str, str]] = Counter()
        self.lengths: list[int] = []

    def outcome(self, sink: str, outcome: str) -> None:
        self.outcomes[(sink, outcome)] += 1

    def queue_length(self, sink: str, length: int) -> None:
        self.lengths.append(length)


def test_a_full_queue_drops_its_oldest_and_counts_each_outcome() -> None:
    gate = threading.Event()
    sent: list[str] = []

    def send(d: Delivery) -> bool:
        gate.wait(30)
        sent.append(d.event_id)
        if d.event_id == "boom":
            raise RuntimeError("a bug in a sink")
        return d.event_id != "bad"

    tally = Tally()
    queue = DeliveryQueue("webhook", send, tally, maxlen=3)
    queue.put(Delivery("u", "first", b""))
    wait_for(lambda: len(queue) == 0, 10, "the first delivery to be taken")
    for name in ("a", "b", "c", "bad", "boom"):  # a and b are dropped: the oldest go first
        queue.put(Delivery("u", name, b""))
    assert len(queue) == 3 and tally.outcomes[("webhook", DROPPED)] == 2
    gate.set()
    wait_for(queue.idle, 10, "the queue to drain")
    queue.close()
    assert sent == ["first", "c", "bad", "boom"]
    assert tally.outcomes == {("webhook", DROPPED): 2, ("webhook", DELIVERED): 2,
                              ("webhook", FAILED): 2}
    assert max(tally.lengths) == 3 and tally.lengths[-1] == 0


@pytest.mark.parametrize("url, target", [
    ("mqtt://broker", MqttTarget("broker", 1883, False, None, None)),
    ("mqtts://u:p%40ss@broker:9883/", MqttTarget("broker", 9883, True, "u", "p@ss")),
])
def test_mqtt_urls(url: str, target: MqttTarget) -> None:
    assert parse_mqtt_url(url) == target


@pytest.mark.parametrize("url", ["http://b", "mqtt://", "mqtt://b/x", "mqtt://b?x=1",
                                 "mqtt://b:99999", "mqtt://u:secret@b:nope"])
def test_bad_mqtt_urls_are_refused_without_the_password(url: str) -> None:
    with pytest.raises(ValueError) as err:
        parse_mqtt_url(url)
    assert "secret" not in str(err.value)


def test_the_signature_covers_the_timestamp_and_the_body() -> None:
    expected = hmac.new(b"k" * 32, b"1700000000.{}", hashlib.sha256).hexdigest()
    assert sign("k" * 32, "1700000000", b"{}") == "sha256=" + expected
    assert sign("k" * 32, "1700000001", b"{}") != sign("k" * 32, "1700000000", b"{}")
