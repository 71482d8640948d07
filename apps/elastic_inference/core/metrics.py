"""Prometheus metrics: every name declared here, every object built on an injected registry.

Worker gauges ``ei_infer_fps``, ``ei_drop_fps`` and ``ei_scale_ratio`` keep the names of the
original design so existing HPA objects keep working. See doc/metrics.md.
"""

from __future__ import annotations

import time
from collections import deque

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

WORKER_LABELS = ("type", "model", "device")

# Worker
INFER_FPS = "ei_infer_fps"
DROP_FPS = "ei_drop_fps"
SCALE_RATIO = "ei_scale_ratio"
CAPACITY_FPS = "ei_capacity_fps"
FRAMES_INFERRED = "ei_frames_inferred_total"
FRAMES_DROPPED = "ei_frames_dropped_total"
INFERENCE_SECONDS = "ei_inference_seconds"
FRAME_LATENCY = "ei_frame_latency_seconds"
BATCH_SIZE = "ei_batch_size"
QUEUE_LENGTH = "ei_queue_length"
ACTIVE_WORKERS = "ei_active_workers"
# Every service
REDIS_RECONNECTS = "ei_redis_reconnects_total"
# Stream
STREAM_FRAMES = "ei_stream_frames_total"
STREAM_FPS = "ei_stream_fps"
STREAM_ERRORS = "ei_stream_capture_errors_total"
STREAM_OVERFLOW = "ei_stream_overflow_drops_total"
STREAM_STATE = "ei_stream_state"
STREAM_SOURCE_RECONNECTS = "ei_stream_source_reconnects_total"
POOL_SOURCES = "ei_pool_sources"
POOL_REPLICAS = "ei_pool_replicas"
POOL_LEASES_LOST = "ei_pool_leases_lost_total"
# Websocket
WS_CLIENTS = "ei_ws_clients"
WS_SENT = "ei_ws_frames_sent_total"
WS_SKIPPED = "ei_ws_frames_skipped_total"
WS_TRACKS_INVALID = "ei_ws_tracks_invalid_total"
# Track
ZONE_OCCUPANCY = "ei_zone_occupancy"
LINE_CROSSINGS = "ei_line_crossings_total"
ZONE_EVENTS = "ei_zone_events_total"
TRACK_MESSAGES = "ei_track_messages_total"
TRACK_STREAMS = "ei_track_streams_owned"
TRACK_DROPPED = "ei_track_results_dropped_total"
TRACK_GAPS = "ei_track_gaps_skipped_total"
# Events (recorded by ei track, delivered to sinks)
EVENTS_RECORDED = "ei_events_recorded_total"
EVENT_DELIVERIES = "ei_event_deliveries_total"
EVENT_QUEUE_LENGTH = "ei_event_queue_length"
EVENT_SINKS = ("webhook", "mqtt")
# Gateway
HTTP_REQUESTS = "ei_http_requests_total"
MJPEG_FRAMES = "ei_mjpeg_frames_sent_total"

LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.2, 0.35, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0)
INFER_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64)


def scale_ratio(infer_fps: float, type_drop_fps: float, active_workers: int,
                capacity_fps: float) -> float:
    """Per-pod share of demand over one pod's capacity (design.md §5).

    Summed over a type's pods it is demand / capacity, so an HPA with ``averageValue: 1``
    asks for ``ceil(demand / capacity)`` replicas. Unknown capacity (never busy) gives 0.
    """
    if capacity_fps <= 0:
        return 0.0
    return (infer_fps + type_drop_fps / max(1, active_workers)) / capacity_fps


class RateWindow:
    """Events per second over a sliding window of ``window`` seconds."""

    def __init__(self, window: float = 5.0, now: float | None = None) -> None:
        self.window = window
        self.started = time.monotonic() if now is None else now
        self._events: deque[tuple[float, float]] = deque()

    def add(self, n: float = 1.0, now: float | None = None) -> None:
        self._events.append((time.monotonic() if now is None else now, n))

    def rate(self, now: float | None = None) -> float:
        now = time.monotonic() if now is None else now
        while self._events and self._events[0][0] < now - self.window:
            self._events.popleft()
        span = min(self.window, max(now - self.started, 1e-3))
        return sum(n for _, n in self._events) / span


class CapacityWindow:
    """Frames per busy second over a sliding window; keeps the last value when idle."""

    def __init__(self, window: float = 10.0) -> None:
        self.window = window
        self._events: deque[tuple[float, int, float]] = deque()
        self._last = 0.0

    def add(self, frames: int, busy_seconds: float, now: float | None = None) -> None:
        self._events.append((time.monotonic() if now is None else now, frames, busy_seconds))

    def capacity(self, now: float | None = None) -> float:
        now = time.monotonic() if now is None else now
        while self._events and self._events[0][0] < now - self.window:
            self._events.popleft()
        busy = sum(b for _, _, b in self._events)
        if busy > 0:
            self._last = sum(f for _, f, _ in self._events) / busy
        return self._last


class WorkerMetrics:
    """Everything an inference worker exports, labelled by type, model and device."""

    def __init__(self, registry: CollectorRegistry, infer_type: str, model: str,
                 device: str) -> None:
        lv = (infer_type, model, device)
        lab = WORKER_LABELS

        def gauge(name: str, doc: str) -> Gauge:
            return Gauge(name, doc, lab, registry=registry)

        self.infer_fps = gauge(INFER_FPS, "Frames inferred per second (sliding window)").labels(*lv)
        self.drop_fps = gauge(DROP_FPS, "This pod's share of the type's drops per second"
                              ).labels(*lv)
        self.scale_ratio = gauge(SCALE_RATIO, "(infer_fps + type_drop_fps / workers) / "
                                 "capacity_fps; HPA target 1").labels(*lv)
        self.capacity_fps = gauge(CAPACITY_FPS, "Frames per busy second").labels(*lv)
        self.queue_length = gauge(QUEUE_LENGTH, "Frames waiting in the type's queue").labels(*lv)
        self.active_workers = gauge(ACTIVE_WORKERS, "Live workers sharing the queue").labels(*lv)
        self.inferred = Counter(FRAMES_INFERRED, "Frames inferred and published", lab,
                                registry=registry).labels(*lv)
        self._dropped = Counter(FRAMES_DROPPED, "Frames dropped, by reason", (*lab, "reason"),
                                registry=registry)
        self.dropped = {r: self._dropped.labels(*lv, r) for r in ("overflow", "stale", "invalid")}
        self.inference_seconds = Histogram(INFERENCE_SECONDS, "Submit to detections, per frame",
                                           lab, buckets=INFER_BUCKETS, registry=registry
                                           ).labels(*lv)
        self.latency = Histogram(FRAME_LATENCY, "Capture to published, seconds", lab,
                                 buckets=LATENCY_BUCKETS, registry=registry).labels(*lv)
        self.batch_size = Histogram(BATCH_SIZE, "Frames per popped batch", lab,
                                    buckets=BATCH_BUCKETS, registry=registry).labels(*lv)
        self.reconnects = Counter(REDIS_RECONNECTS, "Recoveries from a Redis outage",
                                  ("component",), registry=registry).labels("infer")


class StreamFamilies:
    """The stream metrics of one process, labelled by stream id: built once per registry, so a
    pool replica's readers share them (one :class:`StreamMetrics` each)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.frames = Counter(STREAM_FRAMES, "Frames captured and pushed", ("stream",),
                              registry=registry)
        self.fps = Gauge(STREAM_FPS, "Frames pushed per second", ("stream",), registry=registry)
        self.errors = Counter(STREAM_ERRORS, "Failed reads or opens of the source", ("stream",),
                              registry=registry)
        self.overflow = Counter(STREAM_OVERFLOW, "Frames this stream's pushes trimmed from a full "
                                "queue", ("stream", "type"), registry=registry)
        self.reconnects = Counter(REDIS_RECONNECTS, "Recoveries from a Redis outage",
                                  ("component",), registry=registry).labels("stream")
        self.source_reconnects = Counter(STREAM_SOURCE_RECONNECTS, "Live source reopened after "
                                         "it failed", ("stream",), registry=registry)
        self.state = Gauge(STREAM_STATE, "1 for the source's current state, 0 for the others",
                           ("stream", "state"), registry=registry)


class StreamMetrics:
    """What one stream exports (its series of the process's :class:`StreamFamilies`)."""

    def __init__(self, families: StreamFamilies | CollectorRegistry, stream: str) -> None:
        if isinstance(families, CollectorRegistry):
            families = StreamFamilies(families)
        self.families = families
        self.frames = families.frames.labels(stream)
        self.fps = families.fps.labels(stream)
        self.errors = families.errors.labels(stream)
        self.overflow = families.overflow
        self.reconnects = families.reconnects
        self.source_reconnects = families.source_reconnects.labels(stream)
        self._state = families.state
        self._stream = stream

    def set_state(self, state: str, states: tuple[str, ...]) -> None:
        """One series per state, exactly one of them 1 (the usual enum-as-gauge pattern)."""
        for s in states:
            self._state.labels(self._stream, s).set(1.0 if s == state else 0.0)

    def remove(self, states: tuple[str, ...], types: tuple[str, ...]) -> None:
        """Drop this stream's series (a pool replica stopped reading it: another may now)."""
        f, stream = self.families, self._stream
        series = [(f.frames, (stream,)), (f.fps, (stream,)), (f.errors, (stream,)),
                  (f.source_reconnects, (stream,)),
                  *((f.state, (stream, s)) for s in states),
                  *((f.overflow, (stream, t)) for t in types)]
        for family, labels in series:
            try:
                family.remove(*labels)
            except KeyError:
                pass


class PoolMetrics:
    """What ``ei stream --pool`` exports beside its readers' stream metrics."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.sources = Gauge(POOL_SOURCES, "Managed sources this replica holds the lease of",
                             registry=registry)
        self.replicas = Gauge(POOL_REPLICAS, "Live stream-pool replicas, this one included",
                              registry=registry)
        self.lost = Counter(POOL_LEASES_LOST, "Source leases this replica lost (not renewed in "
                            "time, or taken over)", registry=registry)


class WebsocketMetrics:
    """What the websocket fan-out exports."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.clients = Gauge(WS_CLIENTS, "Connected websocket clients", registry=registry)
        self.sent = Counter(WS_SENT, "Frames sent to clients", registry=registry)
        self.skipped = Counter(WS_SKIPPED, "Frames skipped for slow clients", registry=registry)
        self.tracks_invalid = Counter(WS_TRACKS_INVALID,
                                      "Live tracks entries skipped: not a JSON object",
                                      registry=registry)
        self.reconnects = Counter(REDIS_RECONNECTS, "Recoveries from a Redis outage",
                                  ("component",), registry=registry).labels("websocket")


class GatewayMetrics:
    """What the gateway exports."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = Counter(HTTP_REQUESTS, "HTTP requests by handler and status code",
                                ("handler", "code"), registry=registry)
        self.reconnects = Counter(REDIS_RECONNECTS, "Recoveries from a Redis outage",
                                  ("component",), registry=registry).labels("gateway")
        self.mjpeg_frames = Counter(MJPEG_FRAMES, "Frames sent to MJPEG viewers",
                                    registry=registry)


class TrackMetrics:
    """What ``ei track`` exports: counts of the streams it owns (by stream and rule) and its
    own work."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.occupancy = Gauge(ZONE_OCCUPANCY, "Tracks inside a zone now", ("stream", "rule"),
                               registry=registry)
        self.crossings = Counter(LINE_CROSSINGS, "Tracks that crossed a line, by direction",
                                 ("stream", "rule", "direction", "label"), registry=registry)
        self.zone_events = Counter(ZONE_EVENTS, "Zone events: enter, leave, dwell",
                                   ("stream", "rule", "kind", "label"), registry=registry)
        self.messages = Counter(TRACK_MESSAGES, "Result messages tracked", registry=registry)
        self.streams = Gauge(TRACK_STREAMS, "Streams this replica holds the lease of",
                             registry=registry)
        self._dropped = Counter(TRACK_DROPPED, "Results not tracked: late (their seq was "
                                "passed) or invalid", ("reason",), registry=registry)
        self.dropped = {r: self._dropped.labels(r) for r in ("late", "invalid")}
        self.gaps = Counter(TRACK_GAPS, "Seqs given up on after the reorder wait",
                            registry=registry)
        self.reconnects = Counter(REDIS_RECONNECTS, "Recoveries from a Redis outage",
                                  ("component",), registry=registry).labels("track")


class EventMetrics:
    """Events recorded and their deliveries (``ei track``); the delivery queues count
    through :meth:`outcome` and :meth:`queue_length` (core.delivery.Outcomes)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.recorded = Counter(EVENTS_RECORDED, "Zone and line events stored with their "
                                "snapshot, by kind", ("kind",), registry=registry)
        self.deliveries = Counter(EVENT_DELIVERIES, "Event deliveries to sinks by outcome: "
                                  "delivered, failed (after retries), dropped (queue full)",
                                  ("sink", "outcome"), registry=registry)
        self.queue = Gauge(EVENT_QUEUE_LENGTH, "Event deliveries waiting, by sink",
                           ("sink",), registry=registry)
        for sink in EVENT_SINKS:  # every series from the start, so rate() sees the first one
            self.queue.labels(sink).set(0)
            for outcome in ("delivered", "failed", "dropped"):
                self.deliveries.labels(sink, outcome)

    def outcome(self, sink: str, outcome: str) -> None:
        self.deliveries.labels(sink, outcome).inc()

    def queue_length(self, sink: str, length: int) -> None:
        self.queue.labels(sink).set(length)
