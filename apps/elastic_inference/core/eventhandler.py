"""The :class:`~.analytics.events.EventHandler` of ``ei track``: snapshot, store, queue.

For each frame with events it draws the frame once per track the events are about (the
snapshot highlights the event's track, so events of one track in a frame, say leaving one zone
and entering the next, share one drawing; events of two tracks get one each), stores every
event with its snapshot in one pair of pipelined round trips, and queues one delivery per sink
of the event's rule. Queuing never blocks, so a dead receiver never holds up tracking. Drawing
is passed in (``engine.annotate.track_snapshot``): core does not decode images.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace

from .analytics.events import FrameEvents
from .analytics.tracker import Track
from .delivery import Delivery, DeliveryQueue, Outcomes, StartThread, event_payload, plain_thread
from .eventstore import EventRecord, EventStore
from .metrics import EventMetrics
from .settings import EventSettings
from .webhook import WebhookSender

log = logging.getLogger(__name__)

#: ``draw(jpeg, tracks, highlighted track id) -> JPEG``; ValueError for an undecodable frame.
Draw = Callable[[bytes, Sequence[Track], int | None], bytes]
#: Where a track that ended (no box in its last frame) is said to be.
NO_BOX = (0.0, 0.0, 0.0, 0.0)


class RecordingHandler:
    """Stores each frame's events with snapshots and hands them to the rules' sinks."""

    def __init__(self, store: EventStore, draw: Draw, queues: Mapping[str, DeliveryQueue],
                 metrics: EventMetrics | None = None) -> None:
        self.store = store
        self.draw = draw
        self.queues = queues
        self.metrics = metrics

    def _snapshot(self, frame: FrameEvents, track_id: int) -> bytes:
        try:
            return self.draw(frame.jpeg, frame.tracks, track_id)
        except ValueError as exc:  # the event is kept, without a picture
            log.warning("events of %s seq %d: no snapshot: %s", frame.stream, frame.seq, exc)
            return b""

    def handle(self, frame: FrameEvents) -> None:
        """Record the frame's events and queue their deliveries; never blocks on a sink."""
        if not frame.events:
            return
        boxes = {t.id: t.box for t in frame.tracks}
        drawn: dict[int, bytes] = {}
        pairs: list[tuple[EventRecord, bytes]] = []
        for ev in frame.events:
            if ev.track_id not in drawn:
                drawn[ev.track_id] = self._snapshot(frame, ev.track_id)
            pairs.append((EventRecord("", frame.stream, frame.type, ev.rule, ev.kind,
                                      ev.direction, ev.track_id, ev.label, ev.seq, ev.ts,
                                      boxes.get(ev.track_id, NO_BOX)), drawn[ev.track_id]))
        ids = self.store.record(pairs)
        rules = {r.name: r for r in frame.rules}
        for event_id, (event, jpeg) in zip(ids, pairs, strict=True):
            if self.metrics is not None:
                self.metrics.recorded.labels(event.kind).inc()
            rule = rules.get(event.rule)
            if rule is None or not rule.sinks:
                continue
            payload = event_payload(replace(event, id=event_id), jpeg)
            for sink in rule.sinks:
                self.queues[sink.kind].put(Delivery(sink.target, event_id, payload))


def _no_broker(delivery: Delivery) -> bool:
    log.warning("MQTT event %s to %r not published: EI_MQTT_URL is not set",
                delivery.event_id, delivery.target)
    return False


def delivery_queues(settings: EventSettings, outcomes: Outcomes,
                    start_thread: StartThread = plain_thread,
                    client_id: str = "") -> dict[str, DeliveryQueue]:
    """One queue per sink kind, as the settings say: webhooks by two threads (a dead
    receiver's retries hold up one of them), MQTT by one (paho's own thread does the I/O)."""
    webhook = WebhookSender(settings.webhook_secret, settings.source_policy(),
                            timeout=settings.webhook_timeout, tries=settings.webhook_tries)
    if settings.mqtt_url:
        from .mqttsink import MqttPublisher  # paho: only where MQTT is configured

        mqtt: Callable[[Delivery], bool] = MqttPublisher(settings.mqtt_url, client_id)
    else:
        mqtt = _no_broker
    return {"webhook": DeliveryQueue("webhook", webhook, outcomes, settings.sink_queue, 2,
                                     start_thread),
            "mqtt": DeliveryQueue("mqtt", mqtt, outcomes, settings.sink_queue, 1, start_thread)}
