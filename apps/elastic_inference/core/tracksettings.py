"""``ei track``'s own settings: leases and reading (:class:`TrackOptions`), event recording
and delivery (:class:`EventSettings`), mixins apart from :mod:`.settings` to keep that file a
readable size (it builds ``TrackSettings`` from them and knows their variables).
doc/configuration.md lists them.
"""

from __future__ import annotations

from dataclasses import dataclass

from . import setting_checks as checks
from .delivery import DEFAULT_QUEUE
from .errors import ConfigError
from .eventstore import DEFAULT_MAXLEN, DEFAULT_RETENTION_S, DEFAULT_SNAPSHOTS
from .netguard import SourcePolicy
from .options import opt
from .sessions import MIN_SECRET

#: EI_SOURCE_ALLOW's help, shared with the services whose jobs name URL sources.
SOURCE_ALLOW_HELP = ("comma-separated host names (*.domain too), addresses and CIDR networks "
                      "analysis-job URL sources may name (empty: no URL sources); loopback, "
                      "link-local, private and own addresses only when an address or network "
                      "listed holds them (doc/security.md)")


@dataclass(frozen=True)
class SinkSecrets:
    """Where events go and how they are signed: ``ei track``'s, and ``ei up``'s to hand on to
    the tracker it starts (both from the environment only)."""

    webhook_secret: str = opt("", f"secret signing webhook deliveries (HMAC-SHA256, "
                                  f"X-EI-Signature), at least {MIN_SECRET} characters; empty: "
                                  f"webhook deliveries fail (counted)",
                              secret=True, env_only=True, check=checks.optional_secret)
    mqtt_url: str = opt("", "MQTT broker of the MQTT sinks: mqtt://[user:password@]host[:1883] "
                            "or mqtts:// (TLS); empty: MQTT deliveries fail (counted)",
                        secret=True, env_only=True, check=checks.mqtt_url)


@dataclass(frozen=True)
class EventSettings(SinkSecrets):
    """Events, their snapshots and their delivery to sinks (a mixin for ``ei track``)."""

    event_retention: float = opt(DEFAULT_RETENTION_S, "seconds events and their snapshots are "
                                 "kept (ei:events, ei:event-snapshot:*)", check=checks.positive)
    event_maxlen: int = opt(DEFAULT_MAXLEN, "approximate cap on the number of events kept",
                            check=checks.positive)
    event_snapshots: int = opt(DEFAULT_SNAPSHOTS, "most event snapshots kept (about 50 kB "
                               "each); each new one beyond it deletes the oldest, whose event "
                               "stays", check=checks.positive)
    webhook_timeout: float = opt(5.0, "seconds one webhook try may take to connect and answer",
                                 check=checks.positive)
    webhook_tries: int = opt(3, "tries per webhook delivery (exponential backoff between, "
                                "with jitter), then a counted failure",
                             check=lambda v: "" if 1 <= v <= 10 else "must be 1..10")
    sink_queue: int = opt(DEFAULT_QUEUE, "deliveries waiting per sink kind; beyond it the "
                                         "oldest is dropped (counted)", check=checks.positive)
    source_allow: tuple[str, ...] = opt((), SOURCE_ALLOW_HELP + "; webhook URLs too",
                                        check=checks.source_allow)

    def source_policy(self) -> SourcePolicy:
        return SourcePolicy.parse(self.source_allow)


@dataclass(frozen=True)
class TrackOptions(EventSettings):
    """Leases, reading and counting of ``ei track`` (with its events)."""

    replica_id: str = opt("", "this replica's id in the leases (default: host name and "
                              "process id)",
                          check=lambda v: "" if not v else checks.stream_id(v))
    track_lease: float = opt(5.0, "seconds a replica's lease on a stream lasts unless renewed; "
                                  "a dead replica's streams are free after this",
                             check=checks.positive)
    claim_interval: float = opt(1.0, "seconds between lease renewals and claims of free "
                                     "streams (keep it well below EI_TRACK_LEASE)",
                                check=checks.positive)
    tracks_maxlen: int = opt(64, "live tracks buffer length per stream (approximate)",
                             check=checks.positive)
    results_retention: float = opt(3600.0, "seconds of counts history kept per stream (the "
                                           "result history's setting)", check=checks.positive)
    counts_interval: float = opt(10.0, "seconds between samples of a stream's counts in its "
                                       "history", check=checks.positive)
    reorder_bound: int = opt(16, "most results of one stream and type held while waiting for "
                                 "a missing seq", check=checks.positive)
    reorder_timeout: float = opt(0.5, "seconds a missing seq is waited for before it is "
                                      "given up on", check=checks.non_negative)
    max_frames: int = opt(0, "exit after tracking this many result messages (0 = run until "
                             "stopped)", check=checks.non_negative)

    def __post_init__(self) -> None:
        if self.claim_interval * 2 > self.track_lease:
            raise ConfigError(f"EI_CLAIM_INTERVAL ({self.claim_interval:g}) must be at most "
                              f"half of EI_TRACK_LEASE ({self.track_lease:g}): a lease must "
                              f"survive a missed renewal")
