"""Checks of single setting values, for ``opt(check=...)``: each returns "" or what is wrong.

Apart from :mod:`.settings` so that file stays the list of options; a check that only asks a
parser whether it accepts the value is made by :func:`parses`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from .clients import parse_networks
from .delivery import parse_mqtt_url
from .errors import ConfigError
from .keys import STREAM_ID_RE, TYPE_RE
from .netguard import SourcePolicy
from .ratelimit import Rate
from .redisconn import check_url
from .sessions import check_secret


def parses(parse: Callable[[Any], object], *errors: type[Exception]) -> Callable[[Any], str]:
    """A check that passes when ``parse`` accepts the value; else the parser's message."""

    def check(value: Any) -> str:
        try:
            parse(value)
        except errors as exc:
            return str(exc)
        return ""

    return check


def optional_secret(v: str) -> str:
    """Empty, or a secret long enough (the message never shows it)."""
    return "" if not v else check_secret(v)


def mqtt_url(v: str) -> str:
    return "" if not v else parses(parse_mqtt_url, ValueError)(v)


def positive(v: float) -> str:
    return "" if v > 0 else "must be > 0"


def non_negative(v: float) -> str:
    return "" if v >= 0 else "must be >= 0"


def port(v: int) -> str:
    return "" if 0 <= v <= 65535 else "must be a port number 0..65535"


def stream_id(v: str) -> str:
    return "" if STREAM_ID_RE.fullmatch(v) else f"must match {STREAM_ID_RE.pattern}"


def types(v: tuple[str, ...]) -> str:
    if not v:
        return "must name at least one inference type"
    bad = [t for t in v if not TYPE_RE.fullmatch(t)]
    return f"invalid type names {bad}: each must match {TYPE_RE.pattern}" if bad else ""


def redis_url(v: str) -> str:
    """Empty (embedded Redis) or a URL :func:`.redisconn.check_url` accepts."""
    return parses(check_url, ConfigError)(v) if v else ""


networks = parses(parse_networks, ValueError)
source_allow = parses(SourcePolicy.parse, ValueError)
rate = parses(Rate.parse, ValueError)


def websocket_url(v: str, absolute: bool = False) -> str:
    """A ws:// or wss:// URL with a host, or (unless ``absolute``) a path such as ``/ws``."""
    if not v or (not absolute and v.startswith("/") and not v.startswith("//")):
        return ""
    parts = urlsplit(v)
    if parts.scheme in ("ws", "wss") and parts.netloc and not parts.username:
        return ""
    what = "a ws:// or wss:// URL" if absolute else "a path such as /ws or a ws:// or wss:// URL"
    return f"must be {what} (without credentials)"
