"""Which URLs an analysis job may make the system fetch: no server-side request forgery.

A job's ``source`` URL is fetched by the runner (FFmpeg) from inside the cluster, so without a
check any API client could make it read the gateway's own API, Redis, a cloud metadata service
(169.254.169.254) or probe ports. :class:`SourcePolicy` (``EI_SOURCE_ALLOW``) decides:

- only ``rtsp``, ``http`` and ``https``; an empty allow-list refuses every URL;
- the host must be listed by name (``cam.example.com``, ``*.example.com``) or fall in a
  listed address or network (``203.0.113.7``, ``10.20.0.0/16``, ``2001:db8::/32``);
- every address the host resolves to is checked: loopback, link-local, private, multicast,
  unspecified, reserved and the machine's own addresses are refused unless listed
  explicitly: by the address itself or a listed network of that kind of address
  (``127.0.0.1``, ``10.0.0.0/8``; never ``0.0.0.0/0``). Listing a *name* never allows such
  an address, so a listed name re-pointed at 127.0.0.1 is still refused.

Redirects are walked by :mod:`.sourceurl`; doc/security.md says why.
"""

from __future__ import annotations

import ipaddress
import itertools
import socket
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from .errors import InvalidMessage

#: URL schemes a job source may use (FFmpeg reads them); anything else must be a media file.
URL_SCHEMES = ("rtsp", "http", "https")
DEFAULT_PORTS = {"http": 80, "https": 443, "rtsp": 554}

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Resolver = Callable[[str, int], list[Address]]


class SourceRefused(InvalidMessage):
    """A source URL the allow-list refuses; the message says why (an API client sees it)."""


def resolve(host: str, port: int) -> list[Address]:
    """Every address ``host`` resolves to (TCP), IPv4-mapped IPv6 unwrapped."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        raise SourceRefused(f"source host {host!r} does not resolve: {exc}") from exc
    return list(dict.fromkeys(_plain(ipaddress.ip_address(str(i[4][0]).split("%")[0]))
                              for i in infos))


def _plain(addr: Address) -> Address:
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        return addr.ipv4_mapped
    return addr


def own_addresses() -> set[Address]:
    """The machine's own addresses: its host name's, and (Linux) every interface's.

    Interfaces come from ``/proc/net/fib_trie`` (IPv4 ``LOCAL`` routes) and
    ``/proc/net/if_inet6``; elsewhere only the host name counts. Read at each check, so an
    address added later counts too.
    """
    found: set[Address] = set()
    for name in {socket.gethostname(), "localhost"}:
        try:
            found.update(resolve(name, 0))
        except SourceRefused:
            pass
    found.update(_proc_addresses())
    return found


def _proc_addresses() -> set[Address]:
    found: set[Address] = set()
    try:
        lines = Path("/proc/net/fib_trie").read_text().splitlines()
        for previous, line in itertools.pairwise(lines):
            if "/32 host LOCAL" in line and previous.strip().startswith("|--"):
                found.add(ipaddress.IPv4Address(previous.strip()[3:].strip()))
    except (OSError, ValueError):
        pass
    try:
        for line in Path("/proc/net/if_inet6").read_text().splitlines():
            digits = line.split()[0]
            found.add(ipaddress.IPv6Address(int(digits, 16)))
    except (OSError, ValueError, IndexError):
        pass
    return found


def special_kind(addr: Address, own: Iterable[Address] = ()) -> str:
    """Why ``addr`` is refused unless listed explicitly, or ``""`` for a public address."""
    for kind, flag in (("loopback", addr.is_loopback), ("link-local", addr.is_link_local),
                       ("own", addr in set(own)), ("unspecified", addr.is_unspecified),
                       ("multicast", addr.is_multicast), ("private", addr.is_private),
                       ("reserved", addr.is_reserved)):
        if flag:
            return "one of this machine's own addresses" if kind == "own" else f"a {kind} address"
    return "" if addr.is_global else "a non-public address"


@dataclass(frozen=True)
class SourcePolicy:
    """The parsed ``EI_SOURCE_ALLOW``: listed host names and networks (empty: no URLs)."""

    names: frozenset[str] = frozenset()
    networks: tuple[Network, ...] = ()

    @classmethod
    def parse(cls, values: Iterable[str]) -> SourcePolicy:
        """Host names, ``*.domain`` wildcards, addresses and CIDR networks; ValueError names
        a bad entry."""
        names: set[str] = set()
        networks: list[Network] = []
        for raw in values:
            value = raw.strip().lower().rstrip(".")
            if not value:
                continue
            try:
                networks.append(ipaddress.ip_network(value.strip("[]"), strict=False))
                continue
            except ValueError:
                pass
            label = value[2:] if value.startswith("*.") else value
            if not label or "/" in value or not all(
                    part and len(part) <= 63 and part.replace("-", "").isalnum()
                    and part.isascii() for part in label.split(".")):
                raise ValueError(f"{raw!r} is not a host name, *.domain, IP address or network")
            names.add(value)
        return cls(frozenset(names), tuple(networks))

    def __bool__(self) -> bool:
        return bool(self.names or self.networks)

    def _listed_name(self, host: str) -> bool:
        host = host.lower().rstrip(".")
        return host in self.names or any(
            n.startswith("*.") and host.endswith(n[1:]) for n in self.names)

    def _listed_address(self, addr: Address) -> bool:
        return any(addr.version == n.version and addr in n for n in self.networks)

    def _listed_explicitly(self, addr: Address) -> bool:
        """``addr`` is listed by itself, or in a network of only that kind of address.

        So ``10.0.0.0/8`` or ``127.0.0.1`` unlock what they hold, but ``0.0.0.0/0`` or a
        public network never unlock loopback, metadata or an own address inside them.
        """
        return any(addr.version == n.version and addr in n and (
            n.num_addresses == 1 or special_kind(n.network_address)
            == special_kind(n.broadcast_address) != "") for n in self.networks)

    def check(self, url: str, resolver: Resolver = resolve,
              own: Callable[[], set[Address]] = own_addresses,
              what: str = "source") -> list[Address]:
        """The addresses ``url``'s host resolves to, all allowed; SourceRefused saying why.
        ``what`` names the URL in messages (a job's ``source``, a rule's ``webhook``)."""
        try:
            parts = urlsplit(url)
            host, port = parts.hostname, parts.port
        except ValueError as exc:
            raise SourceRefused(f"{what} URL is malformed: {exc}") from exc
        scheme = parts.scheme.lower()
        if scheme not in URL_SCHEMES:
            raise SourceRefused(f"{what} URL scheme {scheme!r} is not allowed: use "
                                f"{', '.join(URL_SCHEMES)}")
        if not host:
            raise SourceRefused(f"{what} URL has no host")
        if not self:
            hint = " (use a file in the media directory)" if what == "source" else ""
            raise SourceRefused(f"URL {what}s are off: EI_SOURCE_ALLOW lists no host or "
                                f"network{hint}")
        addresses = resolver(host, port or DEFAULT_PORTS[scheme])
        if not addresses:
            raise SourceRefused(f"{what} host {host!r} resolves to no address")
        if not self._listed_name(host) and not all(map(self._listed_address, addresses)):
            raise SourceRefused(f"{what} host {host!r} is not in EI_SOURCE_ALLOW")
        mine = own()
        for addr in addresses:
            kind = special_kind(addr, mine)
            if kind and not self._listed_explicitly(addr):
                raise SourceRefused(f"{what} host {host!r} resolves to {addr}, {kind}, which "
                                    f"EI_SOURCE_ALLOW does not list explicitly")
        return addresses


#: The default: no URL source at all.
NO_URLS = SourcePolicy()
