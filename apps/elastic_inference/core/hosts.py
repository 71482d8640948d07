"""Which ``Host`` and ``Origin`` a browser may use (EI_ALLOWED_HOSTS, EI_ALLOWED_ORIGINS).

A Host allow-list defeats DNS rebinding: a page on ``evil.example`` whose name is made to
resolve to the gateway's address still sends ``Host: evil.example``. An Origin allow-list stops
another site's page from opening a websocket with the visitor's network position (and, later,
cookies). Host patterns (doc/security.md, "Hosts and origins"):

- ``name`` or an IP address (IPv6 with or without brackets): that host, on any port;
- ``.example.com``: example.com and every subdomain;
- ``*``: any host (only when listed explicitly).

Origins are ``scheme://host[:port]`` (the default port left out), or ``*``; when none are
listed, an ``http``/``https`` origin whose host is an allowed host is allowed, on any port.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

#: What ``ei up`` and the services allow when EI_ALLOWED_HOSTS is unset (plus a specific
#: listen address): pages served from this machine.
LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "[::1]")
#: Listen addresses that name no particular host.
WILDCARD_ADDRESSES = frozenset({"", "0.0.0.0", "::", "[::]"})

# A host as it may appear in a Host header: a DNS name or IPv4 address, or a bracketed IPv6
# address; then an optional port. Anything else (spaces, '@', '/', control bytes) is refused.
_HOST_RE = re.compile(r"^(?P<host>[a-z0-9_.-]+|\[[0-9a-f:.]+\])(?::(?P<port>[0-9]{1,5}))?$")
_NAME_RE = re.compile(r"^\.?[a-z0-9_]([a-z0-9_.-]*[a-z0-9_])?$")
_DEFAULT_PORTS = {"http": 80, "https": 443}
#: The answer to a websocket handshake from a page of another origin.
ORIGIN_REFUSED = ("Origin not allowed: open the dashboard from an allowed origin "
                  "(EI_ALLOWED_ORIGINS)")


def _bracket(host: str) -> str:
    """``host`` lower-cased, IPv6 addresses in brackets and compressed, trailing dot dropped."""
    host = host.strip().lower()
    bare = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if ":" in bare:
        return f"[{ipaddress.IPv6Address(bare).compressed}]"
    return host[:-1] if host.endswith(".") and len(host) > 1 else host


def host_of(header: str | None) -> str | None:
    """The host part of a ``Host`` header, normalised; None if absent or malformed."""
    if not header:
        return None
    m = _HOST_RE.match(header.strip().lower())
    if m is None:
        return None
    try:
        return _bracket(m.group("host"))
    except ValueError:  # brackets around something that is no IPv6 address
        return None


def parse_host_pattern(entry: str) -> str:
    """One EI_ALLOWED_HOSTS entry, normalised; ValueError says what is wrong (no port)."""
    text = entry.strip().lower()
    if text == "*":
        return text
    try:
        host = _bracket(text)
    except ValueError:
        host = ""  # a colon but no IPv6 address: a port or a scheme
    if host.startswith("[") or _NAME_RE.match(host):
        return host
    raise ValueError(f"invalid host {entry!r}: a host name, IP address, .domain or * "
                     "(without scheme or port)")


def parse_origin(entry: str) -> str:
    """One EI_ALLOWED_ORIGINS entry (or an Origin header), normalised to
    ``scheme://host[:port]`` without the scheme's default port; ValueError if it is none."""
    text = entry.strip()
    if text == "*":
        return text
    parts = urlsplit(text.lower())
    if (parts.scheme not in _DEFAULT_PORTS or not parts.netloc or parts.path
            or parts.query or parts.fragment or "@" in parts.netloc):
        raise ValueError(f"invalid origin {entry!r}: expected http[s]://host[:port]")
    m = _HOST_RE.match(parts.netloc)
    if m is None:
        raise ValueError(f"invalid origin {entry!r}: expected http[s]://host[:port]")
    try:
        host = _bracket(m.group("host"))
    except ValueError as exc:
        raise ValueError(f"invalid origin {entry!r}: not an IPv6 address") from exc
    port = m.group("port")
    if port is None or int(port) == _DEFAULT_PORTS[parts.scheme]:
        return f"{parts.scheme}://{host}"
    return f"{parts.scheme}://{host}:{int(port)}"


def is_loopback(listen_host: str) -> bool:
    """Whether a server listening on ``listen_host`` is reachable from this machine only."""
    host = listen_host.strip().strip("[]").lower()
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def default_hosts(listen_host: str) -> tuple[str, ...]:
    """The loopback names, plus ``listen_host`` when it is a specific address."""
    if listen_host.strip().lower() in WILDCARD_ADDRESSES:
        return LOOPBACK_HOSTS
    own = parse_host_pattern(listen_host)
    return LOOPBACK_HOSTS if own in LOOPBACK_HOSTS else (*LOOPBACK_HOSTS, own)


def local_hosts(listen_host: str) -> tuple[str, ...]:
    """What ``ei up`` allows by default: :func:`default_hosts`, and for a wildcard listen
    address also this machine's names (``hostname``, its FQDN), which other machines on the
    network use to reach it. Addresses are left out: list them in EI_ALLOWED_HOSTS."""
    hosts = list(default_hosts(listen_host))
    if listen_host.strip().lower() in WILDCARD_ADDRESSES:
        for name in (socket.gethostname(), socket.getfqdn()):
            try:
                pattern = parse_host_pattern(name)
            except ValueError:
                continue
            if pattern != "*" and not pattern.startswith(".") and pattern not in hosts:
                hosts.append(pattern)
    return tuple(hosts)


@dataclass(frozen=True)
class HostPolicy:
    """The allowed hosts and origins of one server, checked per request."""

    hosts: tuple[str, ...]
    #: Empty: derived from ``hosts`` (module docstring).
    origins: tuple[str, ...] = ()

    @classmethod
    def build(cls, hosts: Iterable[str], origins: Iterable[str] = (),
              listen_host: str = "") -> HostPolicy:
        """From the settings; no hosts listed means :func:`default_hosts` of ``listen_host``."""
        parsed = tuple(parse_host_pattern(h) for h in hosts if h.strip())
        return cls(parsed or default_hosts(listen_host),
                   tuple(parse_origin(o) for o in origins if o.strip()))

    def allows_host(self, header: str | None) -> bool:
        """Whether a request's ``Host`` header names an allowed host (a missing or malformed
        header never does, unless ``*`` is listed)."""
        if "*" in self.hosts:
            return True
        host = host_of(header)
        return host is not None and self._matches(host)

    def allows_origin(self, header: str, host: str | None = None) -> bool:
        """Whether a browser's ``Origin`` header names an allowed origin (``null`` never).

        ``host``, the request's ``Host`` header when it has passed :meth:`allows_host`, makes
        the server's own origin allowed too: a page it served itself.
        """
        try:
            origin = parse_origin(header)
        except ValueError:
            return False
        if origin == "*":
            return False
        if host is not None and _same_origin(origin, host):
            return True
        if self.origins:
            return "*" in self.origins or origin in self.origins
        if "*" in self.hosts:
            return True
        host = host_of(urlsplit(origin).netloc)
        return host is not None and self._matches(host)

    def _matches(self, host: str) -> bool:
        for pattern in self.hosts:
            if pattern.startswith("."):
                if host == pattern[1:] or host.endswith(pattern):
                    return True
            elif host == pattern:
                return True
        return False


def _same_origin(origin: str, host_header: str) -> bool:
    """Whether normalised ``origin`` names the host and port of a ``Host`` header."""
    parts = urlsplit(origin)
    m = _HOST_RE.match(host_header.strip().lower())
    if m is None or host_of(host_header) != host_of(parts.netloc):
        return False
    default = _DEFAULT_PORTS[parts.scheme]
    port = int(m.group("port")) if m.group("port") else default
    return port == (parts.port or default)


def _first_error(parse: Callable[[str], str], entries: tuple[str, ...]) -> str:
    for entry in entries:
        try:
            parse(entry)
        except ValueError as exc:
            return str(exc)
    return ""


def check_hosts(entries: tuple[str, ...]) -> str:
    """Settings check of EI_ALLOWED_HOSTS: "" or what is wrong."""
    return _first_error(parse_host_pattern, entries)


def check_origins(entries: tuple[str, ...]) -> str:
    """Settings check of EI_ALLOWED_ORIGINS: "" or what is wrong."""
    return _first_error(parse_origin, entries)
