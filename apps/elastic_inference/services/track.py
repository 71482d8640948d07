"""``ei track``: tracks, counts and events of the live streams this replica holds.

One loop, one thread. About once a second (``EI_CLAIM_INTERVAL``) it heartbeats among the
replicas, renews its leases, gives back streams that stopped or exceed its fair share, claims
free ones up to that share (core/leases.py), polls each held stream's rules version and,
every ``EI_COUNTS_INTERVAL``, samples the counts into their history. In between it reads the
held streams' ``ei:out:{stream}`` with one blocking XREAD (bounded by the next housekeeping),
puts each result through the stream's pipeline (reorder, track, count:
core/analytics/pipeline.py) and writes the batch's tracks entries and count increments in
one round trip. Frames with events go to the injected :class:`EventHandler`, with their JPEGs
fetched from the frame store (``ei:frames:{stream}``) in one more round trip: results carry
only the frame's id, and most frames have no event, so no other JPEG is read.

A stream taken over is read from its newest entry (live): the tracker starts empty, ids come
from the stream's id counter in Redis and the counts continue from its counts hash. Redis
errors that pass are retried with backoff; a lease that lapsed meanwhile is simply claimed
again. On SIGTERM the replica gives its leases back and leaves the replica set, so the others
take its streams over at the next claim instead of after the lease expiry.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import replace

from ..core import keys
from ..core.analytics.counting import LINE_WHATS, ZONE_WHATS
from ..core.analytics.events import EventHandler, FrameEvents, with_frames
from ..core.analytics.pipeline import StreamPipeline, tracks_entry
from ..core.broker import OutputBroker
from ..core.errors import InvalidMessage
from ..core.eventhandler import RecordingHandler, delivery_queues
from ..core.eventstore import EventStore
from ..core.leases import Leases, default_replica_id, plan
from ..core.metrics import EventMetrics, TrackMetrics
from ..core.redisconn import REDIS_DOWN_ERRORS, Backoff, RedisClient, error_text
from ..core.registry import StreamRegistry
from ..core.result import decode_result
from ..core.rulestore import RuleStore, StoredRules
from ..core.runtime import running
from ..core.settings import TrackSettings, parse_settings
from ..core.trackstore import TrackStore
from ..engine.annotate import track_snapshot

log = logging.getLogger(__name__)

#: Longest blocking read (ms): the loop must be back for housekeeping and reorder timeouts.
READ_BLOCK_MS = 250
#: Entries read per stream and round trip.
READ_COUNT = 64


class NoEvents:
    """A handler for tests and tools that need no events recorded."""

    def handle(self, frame: FrameEvents) -> None:
        return None


class TrackService:
    """Holds leases on streams and tracks them until stopped (or ``max_frames`` messages)."""

    def __init__(self, settings: TrackSettings, client: RedisClient, metrics: TrackMetrics,
                 stop: threading.Event, handler: EventHandler | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.settings = settings
        self.metrics = metrics
        self.stop = stop
        self.handler: EventHandler = handler or NoEvents()
        self.clock = clock
        self.replica_id = settings.replica_id or default_replica_id("track")
        self.leases = Leases(client, self.replica_id, keys.track_lease, keys.track_replicas(),
                             settings.track_lease, replica_ttl=settings.track_lease)
        self.store = TrackStore(client, settings.tracks_maxlen, settings.results_retention)
        self.broker = OutputBroker(client)
        self.registry = StreamRegistry(client)
        self.rulestore = RuleStore(client)
        self.backoff = Backoff("track")
        self.owned: dict[str, StreamPipeline] = {}
        self.cursors: dict[str, str] = {}
        self.versions: dict[str, tuple[int, int]] = {}
        self._seen: dict[str, tuple[int, int]] = {}  # stream -> (late, skipped) counted
        self.messages = 0
        self._next_claim = 0.0
        self._next_history = clock() + settings.counts_interval

    # -- the loop --------------------------------------------------------------------------

    def run(self) -> int:
        log.info("track replica %s: lease %.1f s, claims every %.1f s", self.replica_id,
                 self.settings.track_lease, self.settings.claim_interval)
        while not self.stop.is_set():
            if self.settings.max_frames and self.messages >= self.settings.max_frames:
                break
            try:
                self.turn()
                if self.backoff.succeeded():
                    self.metrics.reconnects.inc()
            except REDIS_DOWN_ERRORS as exc:
                self.backoff.failed(exc, self.stop)
        self.shutdown()
        log.info("track replica %s stopped after %d messages", self.replica_id, self.messages)
        return 0

    def turn(self) -> None:
        """One housekeeping if due, then one read of the held streams and its writes."""
        now = self.clock()
        if now >= self._next_claim:
            self.housekeep(now)
            self._next_claim = now + self.settings.claim_interval
        wait = max(0.001, self._next_claim - self.clock())
        if not self.owned:
            self.stop.wait(wait)
            return
        entries = self.broker.read(self.cursors, block_ms=max(1, min(READ_BLOCK_MS,
                                                                     int(wait * 1000))),
                                   count=READ_COUNT)
        now = self.clock()
        frames: list[FrameEvents] = []
        for entry in entries:
            pipeline = self.owned.get(entry.stream)
            if pipeline is None:
                continue
            self.cursors[entry.stream] = entry.entry_id
            try:
                result = decode_result(entry.result)
                if result.stream != entry.stream:
                    raise InvalidMessage(f"a result of stream {result.stream!r} in "
                                         f"{entry.stream!r}'s output")
            except InvalidMessage as exc:
                self.metrics.dropped["invalid"].inc()
                log.debug("stream %s: skipping entry %s: %s", entry.stream, entry.entry_id, exc)
                continue
            self.messages += 1
            self.metrics.messages.inc()
            frames += pipeline.push(result, entry.ref, now)
        for pipeline in self.owned.values():
            frames += pipeline.poll(now)
        self.publish(frames)

    def publish(self, frames: list[FrameEvents]) -> None:
        """Write the frames' tracks entries and counts, update the metrics, hand on events
        (with the JPEGs of the frames that have them, fetched in one round trip)."""
        if not frames:
            self._count_reorder()
            return
        frames = with_frames(frames, self.broker.frames.fetch_unique)
        touched = {f.stream for f in frames}
        writes = []
        for f in frames:
            pipeline = self.owned[f.stream]
            writes.append((f.stream, tracks_entry(f, pipeline.rules_version, pipeline.counts()),
                           f.events))
        self.store.write(writes)
        for f in frames:
            for e in f.events:
                if e.kind == "cross":
                    self.metrics.crossings.labels(f.stream, e.rule, e.direction, e.label).inc()
                else:
                    self.metrics.zone_events.labels(f.stream, e.rule, e.kind, e.label).inc()
            if f.events:
                self.handler.handle(f)
        for stream in touched:
            for rule, n in self.owned[stream].occupancy().items():
                self.metrics.occupancy.labels(stream, rule).set(n)
        self._count_reorder()

    def _count_reorder(self) -> None:
        for stream, pipeline in self.owned.items():
            late, skipped = pipeline.late(), pipeline.skipped()
            was_late, was_skipped = self._seen.get(stream, (0, 0))
            if late > was_late:
                self.metrics.dropped["late"].inc(late - was_late)
            if skipped > was_skipped:
                self.metrics.gaps.inc(skipped - was_skipped)
            self._seen[stream] = (late, skipped)

    # -- leases, rules, history ----------------------------------------------------------

    def housekeep(self, now: float) -> None:
        replicas = self.leases.beat()
        live = self.registry.ids()
        held = self.leases.renew(list(self.owned))
        for lost in [s for s in self.owned if s not in held]:
            log.warning("stream %s: lease lost (expired or taken over); no longer tracked", lost)
            self.drop(lost)
        turn = plan(live, held, replicas)
        if turn.release:
            self.leases.release(turn.release)
            for stream in turn.release:
                log.info("stream %s: given back (not live, or beyond the share of %d)",
                         stream, turn.share)
                self.drop(stream)
        for stream in turn.claim:
            if len(self.owned) >= turn.share:
                break
            if self.leases.acquire(stream):
                self.adopt(stream)
        self.metrics.streams.set(len(self.owned))
        self.check_rules()
        if now >= self._next_history:
            self._next_history = now + self.settings.counts_interval
            self.store.write([], [(s, p.counts()) for s, p in self.owned.items()])

    def _rules(self, stream: str) -> StoredRules:
        try:
            return self.rulestore.get(stream)
        except InvalidMessage as exc:
            log.error("stream %s: stored rules unreadable (%s); tracking without rules",
                      stream, exc)
            return StoredRules()

    def adopt(self, stream: str) -> None:
        """Start tracking a stream whose lease was just taken: live from its newest entry."""
        stored = self._rules(stream)
        self.versions[stream] = (stored.version, stored.updated_ms)
        self.cursors[stream] = self.store.newest_id(stream)
        self.owned[stream] = StreamPipeline(
            stream, stored.rules, lambda n: self.store.allocate(stream, n),
            self.store.totals(stream), stored.version, self.settings.reorder_bound,
            self.settings.reorder_timeout)
        self._init_series(stream)
        log.info("stream %s: tracking (%d rule(s), version %d)", stream, len(stored.rules),
                 stored.version)

    def check_rules(self) -> None:
        """Rebuild the counters of streams whose rules were written; their counts restart."""
        streams = list(self.owned)
        if not streams:
            return
        for stream, version in self.store.rules_versions(streams).items():
            if version == self.versions.get(stream):
                continue
            stored = self._rules(stream)
            self._clear_occupancy(stream)
            self.store.reset_counts(stream)
            self.owned[stream].set_rules(stored.rules, stored.version)
            self.versions[stream] = (stored.version, stored.updated_ms)
            self._init_series(stream)
            log.info("stream %s: rules changed (version %d, %d rule(s)); counts restart",
                     stream, stored.version, len(stored.rules))

    def _init_series(self, stream: str) -> None:
        """Every series a rule can have, at zero, where its labels are known (a rule with a
        label filter): a rate over a counter needs the series before its first increment."""
        for rule in self.owned[stream].rules:
            if rule.kind == "zone":
                self.metrics.occupancy.labels(stream, rule.name).set(0)
            for label in rule.labels:
                if rule.kind == "zone":
                    for kind in ZONE_WHATS:
                        self.metrics.zone_events.labels(stream, rule.name, kind, label)
                else:
                    for direction in LINE_WHATS:
                        self.metrics.crossings.labels(stream, rule.name, direction, label)

    def _clear_occupancy(self, stream: str) -> None:
        """Remove the stream's occupancy series: another replica (or new rules) reports now."""
        for rule in self.owned[stream].occupancy():
            try:
                self.metrics.occupancy.remove(stream, rule)
            except KeyError:
                pass

    def drop(self, stream: str) -> None:
        if stream in self.owned:
            self._clear_occupancy(stream)
        self.owned.pop(stream, None)
        self.cursors.pop(stream, None)
        self.versions.pop(stream, None)
        self._seen.pop(stream, None)
        self.metrics.streams.set(len(self.owned))

    def shutdown(self) -> None:
        """Give every lease back and leave the replica set, so others take over at once."""
        try:
            self.leases.release(list(self.owned))
            self.leases.leave()
        except REDIS_DOWN_ERRORS as exc:
            log.warning("leases not given back (%s); they expire in %.0f s", error_text(exc),
                        self.settings.track_lease)
        for stream in list(self.owned):
            self.drop(stream)


def main(argv: list[str]) -> int:
    settings = parse_settings(TrackSettings, argv, prog="ei track")
    settings = replace(settings, replica_id=settings.replica_id or default_replica_id("track"))
    with running("track", settings) as (runtime, client):
        event_metrics = EventMetrics(runtime.registry)
        queues = delivery_queues(settings, event_metrics, runtime.start_thread,
                                 client_id=settings.replica_id)
        handler = RecordingHandler(
            EventStore(client, settings.event_retention, settings.event_maxlen,
                       settings.event_snapshots),
            track_snapshot, queues, event_metrics)
        service = TrackService(settings, client, TrackMetrics(runtime.registry), runtime.stop,
                               handler)
        runtime.ready.set()
        try:
            return service.run() or runtime.exit_code
        finally:
            for queue in queues.values():  # deliveries already queued get a last chance
                queue.close()
