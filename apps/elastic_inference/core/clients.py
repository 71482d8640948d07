"""Who a client is, and how many long-lived connections each may hold.

MJPEG viewers and websockets hold a connection (and, for MJPEG, a thread) for as long as the
client likes, so a total cap alone lets one client take every slot and lock the others out. Each
service therefore caps them per client as well: a client is its IP address as the service sees
it (an IPv6 client by its /64, since one host is routinely given a whole /64), or, when the peer
is a trusted reverse proxy (``EI_TRUSTED_PROXIES``), the address that proxy names in
``X-Forwarded-For`` (nearest untrusted hop) or ``X-Real-IP``. Headers from any other peer are
ignored: anyone can send them. doc/api.md ("Connection limits") describes the policy.

Only the services import tornado or websockets, so this module works on plain strings.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TypeVar

log = logging.getLogger(__name__)

M = TypeVar("M")

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address

#: IPv6 clients are grouped by this prefix: a host usually owns a /64, not one address.
IPV6_CLIENT_PREFIX = 64


def parse_networks(values: Iterable[str]) -> tuple[Network, ...]:
    """Addresses or CIDR networks (``10.0.0.0/8``, ``::1``); ValueError names a bad one."""
    networks = []
    for value in values:
        try:
            networks.append(ipaddress.ip_network(value.strip(), strict=False))
        except ValueError as exc:
            raise ValueError(f"{value!r} is not an IP address or network") from exc
    return tuple(networks)


def _address(text: str) -> Address | None:
    try:
        addr = ipaddress.ip_address(text.strip().strip("[]"))
    except ValueError:
        return None
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        return addr.ipv4_mapped  # a dual-stack socket's view of an IPv4 client
    return addr


def _trusted(addr: Address, trusted: Sequence[Network]) -> bool:
    return any(addr.version == net.version and addr in net for net in trusted)


def client_ip(peer: str, forwarded_for: str | None, real_ip: str | None,
              trusted: Sequence[Network] = ()) -> str:
    """The client's address: ``peer``, unless that is a trusted proxy; then the right-most
    ``X-Forwarded-For`` hop that is not itself trusted, else ``X-Real-IP``, else the last
    trusted hop (a malformed entry ends the walk there)."""
    addr = _address(peer)
    if addr is None:  # a Unix socket or a test transport: use it as it is
        return peer
    if not _trusted(addr, trusted):
        return str(addr)
    if forwarded_for:
        for hop in reversed(forwarded_for.split(",")):
            hop_addr = _address(hop)
            if hop_addr is None:
                return str(addr)
            if not _trusted(hop_addr, trusted):
                return str(hop_addr)
            addr = hop_addr
        return str(addr)
    named = _address(real_ip) if real_ip else None
    return str(named) if named is not None else str(addr)


def client_from(peer: str, header_values: Callable[[str], Sequence[str]],
                trusted: Sequence[Network] = ()) -> str:
    """:func:`client_ip` from a request's headers; ``header_values(name)`` lists every value
    of a header (Tornado's ``get_list``, websockets' ``get_all``): a repeated
    ``X-Forwarded-For`` counts as one list."""
    forwarded = ", ".join(header_values("X-Forwarded-For"))
    real = header_values("X-Real-IP")
    return client_ip(peer, forwarded or None, real[-1] if real else None, trusted)


def forwarded_https(peer: str, header_values: Callable[[str], Sequence[str]],
                    trusted: Sequence[Network] = ()) -> bool:
    """Whether a trusted proxy (a TLS-terminating Ingress) says the client spoke HTTPS
    (``X-Forwarded-Proto: https``); cookies set then must be Secure."""
    addr = _address(peer)
    proto = header_values("X-Forwarded-Proto")
    return (addr is not None and _trusted(addr, trusted) and bool(proto)
            and proto[-1].split(",")[0].strip().lower() == "https")


def client_key(ip: str) -> str:
    """What connections are counted by: the IPv4 address, or the IPv6 address's /64."""
    addr = _address(ip)
    if isinstance(addr, ipaddress.IPv6Address):
        return str(ipaddress.IPv6Network((addr, IPV6_CLIENT_PREFIX), strict=False))
    return ip if addr is None else str(addr)


@dataclass(frozen=True)
class Refusal:
    """Why a connection is not admitted: the total cap or the client's own."""

    per_client: bool
    limit: int
    message: str


class ConnectionCaps:
    """Counts the open connections of one kind, in total and per client key.

    Not thread-safe: each service touches it from its event loop only.
    """

    def __init__(self, what: str, total: int, per_client: int) -> None:
        self.what = what
        self.total = total
        self.per_client = per_client
        self.held: Counter[str] = Counter()

    def __len__(self) -> int:
        return self.held.total()

    def admit(self, key: str) -> Refusal | None:
        """Take a slot for ``key``; a :class:`Refusal` when a cap is reached (nothing taken).

        The client's own cap is checked first, so a client at its cap is told so even when
        the service is full too: retrying later would not help it."""
        if self.held[key] >= self.per_client:
            return Refusal(True, self.per_client,
                           f"too many {self.what} from {key} ({self.per_client}); close one "
                           f"first")
        if len(self) >= self.total:
            return Refusal(False, self.total,
                           f"too many {self.what} ({self.total}); retry later")
        self.held[key] += 1
        return None

    def release(self, key: str) -> None:
        """Give back a slot taken by :meth:`admit`."""
        self.held[key] -= 1
        if self.held[key] <= 0:
            del self.held[key]


async def finished_within(aw: Awaitable[object], timeout: float) -> bool:
    """Await ``aw`` for up to ``timeout`` seconds; False if it is still pending then.

    ``aw`` is not cancelled (cancelling a half-done socket write corrupts the stream): the
    caller closes the connection instead, which ends it. Its outcome is collected, so a write
    failing after the close is not reported as "never retrieved".
    """
    fut = asyncio.ensure_future(aw)
    try:
        await asyncio.wait_for(asyncio.shield(fut), timeout)
    except TimeoutError:
        return False
    return True


def bounded_send(send: Callable[[M], Awaitable[object]], timeout: float,
                 drop: Callable[[], object], name: str) -> Callable[[M], Awaitable[None]]:
    """``send`` that calls ``drop`` (close the connection) when a message has not gone out
    within ``timeout``: a client that reads nothing would otherwise hold its slot forever."""

    async def bounded(message: M) -> None:
        if not await finished_within(send(message), timeout):
            log.info("dropping client %s: nothing read for %g s", name, timeout)
            drop()

    return bounded


@dataclass(frozen=True)
class ConnectionLimits:
    """How long a service waits on a client, and whose forwarding headers it believes."""

    #: Request head (Tornado ``idle_connection_timeout``) or websocket handshake (``open_timeout``).
    header_timeout: float = 10.0
    #: A request body, start to end (Tornado ``body_timeout``).
    body_timeout: float = 60.0
    #: One live message (an MJPEG part, a websocket frame) to the client.
    write_timeout: float = 20.0
    trusted: tuple[Network, ...] = ()
    #: Websockets (direct or through the gateway's ``/ws``) and MJPEG viewers per client.
    ws_per_client: int = 20
    mjpeg_per_client: int = 4


#: The settings' defaults (doc/configuration.md); tests and embedders may pass their own.
DEFAULT_LIMITS = ConnectionLimits()
