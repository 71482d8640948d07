"""The sources the system manages (``/api/sources``), in one Redis HASH (:func:`.keys.sources`).

The gateway writes them, the stream pool (``ei stream --pool``) reads them every turn and leases
each enabled one to a replica (doc/sources.md). A source's id is its stream id. One key and
single-key commands only, so the registry works unchanged on a Redis Cluster.

:func:`parse_source_config` checks a request body's shape and each field's JSON type; whether
a URL is allowed (``EI_SOURCE_ALLOW``) or a file exists needs the network and the media
directory, so the gateway checks that with :func:`.jobrequest.resolve_source`, and the pool
again before it opens the source.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass, field, replace
from typing import Any

from . import keys
from .errors import InvalidMessage
from .redact import redact_url
from .redisconn import RedisClient
from .text import has_control_characters, json_object_body, shown

#: Most sources the registry takes; a POST beyond it is refused.
MAX_SOURCES = 1000
MAX_TYPES = 8
MAX_FPS = 60.0
MAX_WIDTH = 3840
MIN_WIDTH = 64
MAX_SOURCE_LEN = 2048
FIELDS = ("id", "source", "types", "fps", "max_width", "enabled")
_DEVICE_RE = re.compile(r"^(?:[0-9]|[1-5][0-9]|6[0-3]|/dev/video(?:[0-9]|[1-5][0-9]|6[0-3]))$")


def source_kind(source: str) -> str:
    """``url`` (has ``://``), ``webcam`` (a device index 0..63 or ``/dev/videoN``) or ``file``
    (a name in the media directory)."""
    if "://" in source:
        return "url"
    return "webcam" if _DEVICE_RE.fullmatch(source) else "file"


def public_source(source: str) -> str:
    """The source as answers and logs show it: a URL's credentials and query masked."""
    return redact_url(source) if source_kind(source) == "url" else source


@dataclass(frozen=True)
class SourceConfig:
    """One managed source: what to read and how, and which types its frames feed."""

    id: str
    source: str
    types: tuple[str, ...]
    fps: float = 0.0  # frames per second to send; 0 = the source's own rate
    max_width: int = 1280  # downscale wider frames; 0 = never
    enabled: bool = True
    updated: float = field(default=0.0, compare=False)  # epoch seconds of the last write

    def __post_init__(self) -> None:
        keys.check_stream_id(self.id)
        if not self.source or len(self.source) > MAX_SOURCE_LEN \
                or has_control_characters(self.source):
            raise InvalidMessage(f"source must be 1..{MAX_SOURCE_LEN} characters without "
                                 "control characters")
        if not 1 <= len(self.types) <= MAX_TYPES:
            raise InvalidMessage(f"types must name 1..{MAX_TYPES} inference types")
        for t in self.types:
            keys.check_type(t)
        if len(set(self.types)) != len(self.types):
            raise InvalidMessage("inference types repeat")
        if not 0 <= self.fps <= MAX_FPS:
            raise InvalidMessage(f"fps must be in 0..{MAX_FPS:g} (0 = the source's own rate)")
        if self.max_width and not MIN_WIDTH <= self.max_width <= MAX_WIDTH:
            raise InvalidMessage(f"max_width must be 0 (never downscale) or "
                                 f"{MIN_WIDTH}..{MAX_WIDTH}")

    @property
    def kind(self) -> str:
        return source_kind(self.source)

    def to_json(self, public: bool = False) -> dict[str, Any]:
        """The source as JSON; ``public`` masks a URL's credentials (for answers)."""
        return {"id": self.id, "source": public_source(self.source) if public else self.source,
                "kind": self.kind, "types": list(self.types), "fps": self.fps,
                "max_width": self.max_width, "enabled": self.enabled, "updated": self.updated}

    def encode(self) -> str:
        return json.dumps(self.to_json(), separators=(",", ":"))

    @classmethod
    def decode(cls, raw: bytes | str) -> SourceConfig:
        """A stored source; InvalidMessage if the value is damaged."""
        try:
            data = json.loads(raw)
            return cls(id=data["id"], source=data["source"], types=tuple(data["types"]),
                       fps=float(data["fps"]), max_width=int(data["max_width"]),
                       enabled=bool(data["enabled"]), updated=float(data.get("updated", 0)))
        except (ValueError, KeyError, TypeError) as exc:
            raise InvalidMessage(f"stored source is damaged: {exc}") from exc


def parse_source_config(body: bytes | str, stream_id: str | None = None) -> SourceConfig:
    """The source a POST (``stream_id`` None: the body names it) or PUT (the path names it; a
    body ``id`` must agree) body asks for; InvalidMessage naming the problem."""
    data = json_object_body(body, FIELDS, "a source",
                            '{"id": "gate-1", "source": "rtsp://camera/stream", '
                            '"types": ["people"]}')
    sid = data.get("id", stream_id)
    if stream_id is not None and sid != stream_id:
        raise InvalidMessage(f"id {shown(sid)} differs from the path's {shown(stream_id)}")
    if not isinstance(sid, str) or not sid:
        raise InvalidMessage("id is required: the stream id, 1..64 of A-Z a-z 0-9 _ . -")
    source = data.get("source")
    if not isinstance(source, str) or not source:
        raise InvalidMessage("source is required: an rtsp:// or http(s):// URL, a device index "
                             "or a file in the media directory")
    types = data.get("types")
    if not isinstance(types, list) or not all(isinstance(t, str) for t in types):
        raise InvalidMessage(f'types must be a list of inference type names such as ["people"], '
                             f"not {shown(types)}")
    fps = data.get("fps", 0)
    if not isinstance(fps, (int, float)) or isinstance(fps, bool):
        raise InvalidMessage(f"fps must be a number, not {shown(fps)}")
    max_width = data.get("max_width", 1280)
    if not isinstance(max_width, int) or isinstance(max_width, bool):
        raise InvalidMessage(f"max_width must be an integer, not {shown(max_width)}")
    enabled = data.get("enabled", True)
    if not isinstance(enabled, bool):
        raise InvalidMessage(f"enabled must be true or false, not {shown(enabled)}")
    return SourceConfig(id=sid, source=source, types=tuple(types), fps=float(fps),
                        max_width=max_width, enabled=enabled)


class SourceStore:
    """Create, read, replace and delete managed sources (sync; the gateway runs it off its
    event loop)."""

    def __init__(self, client: RedisClient) -> None:
        self.client = client

    def all(self) -> list[SourceConfig]:
        """Every source, by id; a damaged entry is skipped (and reported by :meth:`get`)."""
        found: list[SourceConfig] = []
        for raw in self.client.hgetall(keys.sources()).values():
            try:
                found.append(SourceConfig.decode(raw))
            except InvalidMessage:
                continue
        return sorted(found, key=lambda c: c.id)

    def get(self, stream_id: str) -> SourceConfig | None:
        raw = self.client.hget(keys.sources(), keys.check_stream_id(stream_id))
        return None if raw is None else SourceConfig.decode(raw)

    def create(self, config: SourceConfig, now: float | None = None) -> SourceConfig | None:
        """Store a new source; None if its id is taken (``HSETNX``)."""
        stored = _stamped(config, now)
        ok = self.client.hsetnx(keys.sources(), config.id, stored.encode())
        return stored if ok else None

    def put(self, config: SourceConfig, now: float | None = None) -> SourceConfig:
        """Store the source, replacing one of the same id."""
        stored = _stamped(config, now)
        self.client.hset(keys.sources(), config.id, stored.encode())
        return stored

    def delete(self, stream_id: str) -> bool:
        """Remove the source; whether it existed."""
        return bool(self.client.hdel(keys.sources(), keys.check_stream_id(stream_id)))

    def count(self) -> int:
        return int(self.client.hlen(keys.sources()))


def _stamped(config: SourceConfig, now: float | None) -> SourceConfig:
    return replace(config, updated=time.time() if now is None else now)
