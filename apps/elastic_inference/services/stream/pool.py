"""``ei stream --pool``: the managed sources (``ei:sources``) this replica leases, one reader
thread each (doc/sources.md, "The pool").

Every turn (:data:`.poolsettings.POOL_TURN_S`) the replica heartbeats among the pool replicas,
reads the sources, renews the leases of what it reads, stops what it lost, restarts what
changed, gives back what was deleted, disabled or is beyond its share, and takes free leases up
to that share (:func:`.leases.plan`). A reader is the single mode's :class:`StreamService` on
its own thread with a :class:`.leases.LeaseStop`: it stops when told, and by itself once its
lease may have lapsed (Redis unreachable), so no source is read by two replicas at once.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from functools import partial

from ...core import keys
from ...core.errors import ConfigError, InvalidMessage, SourceError
from ...core.jobrequest import resolve_source
from ...core.leases import Leases, LeaseStop, default_replica_id, plan
from ...core.metrics import PoolMetrics, StreamFamilies, StreamMetrics
from ...core.poolsettings import POOL_TURN_S
from ...core.redisconn import REDIS_DOWN_ERRORS, Backoff, RedisClient, error_text
from ...core.registry import HEARTBEAT_INTERVAL, StreamRegistry
from ...core.runtime import ServiceRuntime
from ...core.settings import StreamSettings
from ...core.sources import SourceConfig, SourceStore, public_source
from .service import STATES, StreamService
from .source import Source, open_capture, parse_source

log = logging.getLogger(__name__)

#: Longest wait for the readers being stopped in one turn (a URL read may take its timeout).
JOIN_S = 2.0


@dataclass
class Reader:
    """One source being read: its config (a change restarts it), stop event and thread.
    ``unregister``: remove its registry entry when it stops (not when its lease was lost or
    lapsed: the entry may be the new holder's by then)."""

    config: SourceConfig
    stop: LeaseStop
    thread: threading.Thread | None = None
    unregister: bool = True

    def alive(self) -> bool:
        return self.thread is not None and self.thread.is_alive()


class StreamPool:
    """One pool replica: leases, readers, and their clean stop."""

    def __init__(self, settings: StreamSettings, runtime: ServiceRuntime, client: RedisClient,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.settings = settings
        self.runtime = runtime
        self.client = client
        self.clock = clock
        self.replica_id = settings.replica_id or default_replica_id("stream")
        self.leases = Leases(client, self.replica_id, keys.source_lease, keys.stream_pool(),
                             settings.lease_seconds, replica_ttl=settings.lease_seconds)
        self.store = SourceStore(client)
        self.registry = StreamRegistry(client)
        self.policy = settings.source_policy()
        self.metrics = PoolMetrics(runtime.registry)
        self.families = StreamFamilies(runtime.registry)
        self.backoff = Backoff("stream pool")
        self.readers: dict[str, Reader] = {}
        self.opener = partial(open_capture, timeout_ms=settings.capture_timeout_ms())

    def run(self) -> int:
        log.info("stream pool replica %s: lease %.1f s, at most %d sources, media in %s",
                 self.replica_id, self.settings.lease_seconds, self.settings.max_sources,
                 self.settings.media_dir)
        stop = self.runtime.stop
        try:
            while not stop.is_set():
                started = self.clock()
                try:
                    self.turn()
                except REDIS_DOWN_ERRORS as exc:
                    self._reap()
                    self.backoff.failed(exc, stop)
                    continue
                if self.backoff.succeeded():
                    self.families.reconnects.inc()
                self.runtime.ready.set()
                stop.wait(max(0.0, POOL_TURN_S - (self.clock() - started)))
        finally:
            self.shutdown()
        return 0

    def turn(self) -> None:
        """Heartbeat, renew, stop what was lost or given back, restart what changed, claim."""
        replicas = self.leases.beat()
        self.metrics.replicas.set(replicas)
        wanted = {c.id: c for c in self.store.all() if c.enabled}
        self._reap()
        sent = self.clock()
        held = self.leases.renew(list(self.readers))
        until = self.leases.valid_until(sent)
        lost = [sid for sid in self.readers if sid not in held]
        for sid in lost:
            log.warning("source %s: lease lost (expired or taken over); reading stops", sid)
            self.metrics.lost.inc()
            self.readers[sid].unregister = False
        self._stop(lost, release=False)
        for sid in held:
            self.readers[sid].stop.hold(until)
        changed = [sid for sid, r in self.readers.items()
                   if sid in wanted and wanted[sid] != r.config]
        kept = {sid: self.readers[sid].stop.until for sid in changed}
        self._stop(changed, release=False)
        for sid in changed:
            log.info("source %s: changed; restarting with its new settings", sid)
            self._start(wanted[sid], kept[sid])
        turn = plan(list(wanted), list(self.readers), replicas, cap=self.settings.max_sources)
        for sid in turn.release:
            log.info("source %s: given back (%s)", sid, f"beyond the share of {turn.share}"
                     if sid in wanted else "deleted or disabled")
        self._stop(turn.release, release=True)
        for sid in turn.claim:
            if len(self.readers) >= turn.share:
                break
            sent = self.clock()
            if self.leases.acquire(sid):
                self._start(wanted[sid], self.leases.valid_until(sent))
        self.metrics.sources.set(len(self.readers))

    def _reap(self) -> None:
        """Forget readers that stopped by themselves (their lease may have lapsed)."""
        ended = [sid for sid, r in self.readers.items() if not r.alive()]
        for sid in ended:
            log.warning("source %s: reader stopped (lease not renewed in time)", sid)
            self.metrics.lost.inc()
            del self.readers[sid]
        if ended:
            self.metrics.sources.set(len(self.readers))
            try:
                self.leases.release(ended)
            except REDIS_DOWN_ERRORS:
                pass  # they expire by themselves

    def _start(self, config: SourceConfig, until: float) -> None:
        log.info("source %s: reading %s -> %s", config.id, public_source(config.source),
                 ",".join(config.types))
        reader = Reader(config, LeaseStop(until, self.clock))
        reader.thread = self.runtime.start_thread(lambda: self._read(reader),
                                                  f"source-{config.id}")
        self.readers[config.id] = reader

    def _stop(self, sids: Iterable[str], release: bool) -> None:
        """Stop these readers, wait for them (bounded), then give their leases back if asked."""
        stopping = [self.readers.pop(sid) for sid in list(sids) if sid in self.readers]
        for r in stopping:
            r.stop.set()
        deadline = self.clock() + JOIN_S
        for r in stopping:
            if r.thread is not None:
                r.thread.join(max(0.0, deadline - self.clock()))
            if r.alive():
                log.warning("source %s: reader still finishing a read; it sends nothing more",
                            r.config.id)
        if release and stopping:
            self.leases.release([r.config.id for r in stopping])
        self.metrics.sources.set(len(self.readers))

    # -- one reader (its own thread) --------------------------------------------------------

    def _read(self, reader: Reader) -> None:
        """Check the source (policy, redirects, media directory), then stream it until
        stopped. A source that cannot be used is shown ``failed`` until it changes; any other
        exception ends the process (runtime.start_thread)."""
        config, stop = reader.config, reader.stop
        metrics = StreamMetrics(self.families, config.id)
        try:
            target = (config.source if config.kind == "webcam"
                      else resolve_source(config.source, self.settings.media_dir, self.policy))
            settings = replace(self.settings, source=target, stream_id=config.id,
                               types=config.types, fps=config.fps, max_width=config.max_width,
                               loop=True, max_frames=0)
            service = StreamService(settings, self.runtime, self.client,
                                    Source(parse_source(target), self.opener), config.id, stop=stop,
                                    metrics=metrics, replica=self.replica_id,
                                    unregister=False)
            service.run()
        except (InvalidMessage, ConfigError, SourceError) as exc:
            self._failed(config, stop, metrics, str(exc))
        finally:
            metrics.remove(STATES, config.types)
            if reader.unregister and not stop.lapsed():
                try:
                    self.registry.remove(config.id)
                except REDIS_DOWN_ERRORS as exc:
                    log.warning("source %s: could not unregister (%s); the entry expires in "
                                "%.0f s", config.id, error_text(exc), self.registry.ttl)

    def _failed(self, config: SourceConfig, stop: threading.Event, metrics: StreamMetrics,
                reason: str) -> None:
        """Show the source as failed in the registry until stopped (a change restarts it)."""
        log.error("source %s: %s (shown as failed until the source changes)", config.id, reason)
        metrics.set_state("failed", STATES)
        info = {"types": list(config.types), "source_kind": config.kind,
                "source": public_source(config.source), "state": "failed", "error": reason,
                "replica": self.replica_id, "reconnects": 0, "frames": 0, "fps": 0}
        while not stop.is_set():
            try:
                self.registry.beat(config.id, info)
            except REDIS_DOWN_ERRORS:
                pass
            stop.wait(HEARTBEAT_INTERVAL)

    def shutdown(self) -> None:
        """Stop every reader, give the leases back and leave the pool, so the others take the
        sources over at their next turn."""
        held = list(self.readers)
        try:
            self._stop(held, release=True)
            self.leases.leave()
        except REDIS_DOWN_ERRORS as exc:
            log.warning("leases not given back (%s); they expire in %.0f s", error_text(exc),
                        self.settings.lease_seconds)
        log.info("stream pool replica %s stopped", self.replica_id)
