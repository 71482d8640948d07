"""Settings of event recording and delivery, a mixin for ``ei track``'s settings (apart from
:mod:`.settings` to keep that file a readable size; it re-exports :class:`EventSettings` and
knows its variables). doc/configuration.md lists them.
"""

from __future__ import annotations

from dataclasses import dataclass

from . import setting_checks as checks
from .delivery import DEFAULT_QUEUE
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
