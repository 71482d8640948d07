"""Event deliveries to a rule's sinks, off the tracking path: a bounded queue per sink kind.

The tracker hands each event to :meth:`DeliveryQueue.put`, which never blocks: when the queue
is full the oldest waiting delivery is dropped (and counted), since a newer event is worth
more than an old one to whoever watches. One thread or a small pool per sink kind takes
deliveries off and calls the sink (webhook POST with retries, MQTT publish); a slow or dead
receiver delays only its own kind's deliveries. doc/analytics.md ("Sinks") says why.
"""

from __future__ import annotations

import base64
import json
import logging
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import unquote, urlsplit

from .eventstore import EventRecord

log = logging.getLogger(__name__)

DELIVERED, FAILED, DROPPED = "delivered", "failed", "dropped"
OUTCOMES = (DELIVERED, FAILED, DROPPED)
#: Deliveries waiting per sink kind by default; beyond it the oldest is dropped.
DEFAULT_QUEUE = 1000

StartThread = Callable[[Callable[[], object], str], threading.Thread]


def plain_thread(target: Callable[[], object], name: str) -> threading.Thread:
    """Start ``target`` as a daemon thread (a service passes ServiceRuntime.start_thread
    instead, so a thread that dies takes the process down)."""
    thread = threading.Thread(target=target, name=name, daemon=True)
    thread.start()
    return thread


def event_payload(event: EventRecord, snapshot: bytes) -> bytes:
    """What a sink receives: the event JSON (as ``GET /api/events`` answers it) plus
    ``snapshot_jpeg_base64`` (empty when the frame could not be drawn)."""
    body = {**event.to_json(), "snapshot_jpeg_base64": base64.b64encode(snapshot).decode()}
    return json.dumps(body, separators=(",", ":")).encode()


@dataclass(frozen=True)
class Delivery:
    """One event for one sink: ``target`` is the webhook URL or the MQTT topic."""

    target: str
    event_id: str
    payload: bytes


class Outcomes(Protocol):
    """Where a queue counts outcomes and its length (EventMetrics, or a test's tally)."""

    def outcome(self, sink: str, outcome: str) -> None: ...

    def queue_length(self, sink: str, length: int) -> None: ...


class DeliveryQueue:
    """A bounded queue of deliveries for one sink kind, drained by ``threads`` threads that
    call ``send`` (True: delivered; False or an exception: failed, already retried)."""

    def __init__(self, sink: str, send: Callable[[Delivery], bool], outcomes: Outcomes,
                 maxlen: int = DEFAULT_QUEUE, threads: int = 1,
                 start_thread: StartThread = plain_thread) -> None:
        self.sink = sink
        self.send = send
        self._outcomes = outcomes
        self._waiting: deque[Delivery] = deque()
        self._maxlen = maxlen
        self._cond = threading.Condition()
        self._closed = False
        self._busy = 0
        self._threads = [start_thread(self._run, f"deliver-{sink}-{n}") for n in range(threads)]

    def put(self, delivery: Delivery) -> None:
        """Queue ``delivery``; never blocks (a full queue drops its oldest)."""
        dropped = None
        with self._cond:
            if len(self._waiting) >= self._maxlen:
                dropped = self._waiting.popleft()
            self._waiting.append(delivery)
            length = len(self._waiting)
            self._cond.notify()
        if dropped is not None:
            log.warning("%s deliveries: queue full (%d); dropped the oldest, event %s",
                        self.sink, self._maxlen, dropped.event_id)
            self._outcomes.outcome(self.sink, DROPPED)
        self._outcomes.queue_length(self.sink, length)

    def __len__(self) -> int:
        with self._cond:
            return len(self._waiting)

    def idle(self) -> bool:
        """Nothing waiting and nothing being sent (tests wait for it)."""
        with self._cond:
            return not self._waiting and not self._busy

    def close(self, timeout: float = 5.0) -> None:
        """Stop taking deliveries; threads finish what they are sending (bounded wait)."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        for thread in self._threads:
            thread.join(timeout / max(1, len(self._threads)))

    def _next(self) -> Delivery | None:
        with self._cond:
            while not self._waiting and not self._closed:
                self._cond.wait()
            if self._closed:
                return None
            self._busy += 1
            delivery = self._waiting.popleft()
            length = len(self._waiting)
        self._outcomes.queue_length(self.sink, length)
        return delivery

    def _run(self) -> None:
        while (delivery := self._next()) is not None:
            try:
                ok = self.send(delivery)
            except Exception:  # a bug in one delivery must not end deliveries
                log.exception("%s delivery of event %s failed", self.sink, delivery.event_id)
                ok = False
            finally:
                with self._cond:
                    self._busy -= 1
            self._outcomes.outcome(self.sink, DELIVERED if ok else FAILED)



@dataclass(frozen=True)
class MqttTarget:
    """``EI_MQTT_URL`` parsed: ``mqtt://[user:password@]host[:1883]`` or ``mqtts://`` (TLS,
    port 8883 by default)."""

    host: str
    port: int
    tls: bool
    username: str | None
    password: str | None


def parse_mqtt_url(url: str) -> MqttTarget:
    """The broker of ``url``; ValueError saying what is wrong (never the password)."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise ValueError("is not a URL with a valid port") from exc
    scheme = parts.scheme.lower()
    if scheme not in ("mqtt", "mqtts") or not parts.hostname:
        raise ValueError("must be mqtt://[user:password@]host[:port] or mqtts://...")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ValueError("must name only the broker (no path or query)")
    tls = scheme == "mqtts"
    return MqttTarget(parts.hostname, port or (8883 if tls else 1883), tls,
                      unquote(parts.username) if parts.username else None,
                      unquote(parts.password) if parts.password is not None else None)
