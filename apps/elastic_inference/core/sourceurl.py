"""The URL a runner hands to FFmpeg for a job source: checked, redirects walked by us.

FFmpeg follows HTTP redirects on its own, to any address. So before a source is opened (and
when the gateway accepts a job) an ``http(s)`` URL is requested here without following
redirects, at most :data:`MAX_REDIRECTS` times; each ``Location`` is checked against the
:class:`~.netguard.SourcePolicy` like the first URL, and the last URL is what FFmpeg opens,
with ``max_redirects`` 0 (:func:`ffmpeg_capture_options`) so a server that redirects only
FFmpeg's own request is not followed either. doc/security.md has the reasoning.
"""

from __future__ import annotations

import http.client
import logging
import socket
import ssl
from collections.abc import Callable
from urllib.parse import urljoin, urlsplit

from .netguard import Address, Resolver, SourcePolicy, SourceRefused, own_addresses, resolve
from .redact import redact_url

log = logging.getLogger(__name__)

MAX_REDIRECTS = 5
PROBE_TIMEOUT = 5.0  # seconds to connect and get a response head
REDIRECTS = (301, 302, 303, 307, 308)
#: OpenCV's variable of FFmpeg open options (``key;value|key;value``).
CAPTURE_OPTIONS_VAR = "OPENCV_FFMPEG_CAPTURE_OPTIONS"


def checked_source_url(url: str, policy: SourcePolicy, timeout: float = PROBE_TIMEOUT,
                       resolver: Resolver = resolve,
                       own: Callable[[], set[Address]] = own_addresses) -> str:
    """The URL to open for ``url``; SourceRefused when it or a redirect is not allowed.

    ``rtsp`` URLs are checked by host only. For ``http(s)`` the response head is read from
    the checked address (no second DNS lookup); a source that cannot be reached is returned
    as it is (nothing redirected; opening it fails with its own message).
    """
    current = url
    for hop in range(MAX_REDIRECTS + 1):
        try:
            addresses = policy.check(current, resolver, own)
        except SourceRefused as exc:
            if not hop:
                raise
            raise SourceRefused(f"source URL redirects to {redact_url(current)}, which is "
                                f"refused: {exc}") from exc
        if urlsplit(current).scheme.lower() == "rtsp":
            return current
        location = _redirect_of(current, addresses[0], timeout)
        if location is None:
            return current
        current = urljoin(current, location)
        log.info("source %s redirects to %s", redact_url(url), redact_url(current))
    raise SourceRefused(f"source URL redirects more than {MAX_REDIRECTS} times")


def _redirect_of(url: str, addr: Address, timeout: float) -> str | None:
    """The ``Location`` a GET of ``url`` at ``addr`` answers with, or None (not a redirect)."""
    parts = urlsplit(url)
    https = parts.scheme.lower() == "https"
    port = parts.port or (443 if https else 80)
    host = parts.hostname or ""
    try:
        sock = socket.create_connection((str(addr), port), timeout=timeout)
    except OSError as exc:
        log.debug("source %s: no answer to check for redirects (%s)", redact_url(url), exc)
        return None
    try:
        if https:
            # Only the redirect is read; FFmpeg does not verify certificates either.
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
            sni = None if _is_address(host) else host
            sock = context.wrap_socket(sock, server_hostname=sni)
        conn = http.client.HTTPConnection(host, port, timeout=timeout)
        conn.sock = sock
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        netloc = parts.netloc.rpartition("@")[2]  # never the credentials
        conn.request("GET", target, headers={"Host": netloc, "User-Agent": "elastic-inference",
                                             "Accept": "*/*"})
        response = conn.getresponse()
        location = response.getheader("Location")
        return location if response.status in REDIRECTS and location else None
    except (OSError, http.client.HTTPException) as exc:
        log.debug("source %s: no answer to check for redirects (%s)", redact_url(url), exc)
        return None
    finally:
        sock.close()


def _is_address(host: str) -> bool:
    try:
        socket.inet_pton(socket.AF_INET6 if ":" in host else socket.AF_INET, host)
    except OSError:
        return False
    return True


def ffmpeg_capture_options(current: str | None) -> str:
    """``OPENCV_FFMPEG_CAPTURE_OPTIONS`` with FFmpeg's own redirects off (``max_redirects``).

    Unset, OpenCV opens RTSP over TCP; that default is kept, as setting the variable drops it.
    """
    kept = [o for o in (current or "rtsp_transport;tcp").split("|")
            if o and not o.startswith("max_redirects;")]
    return "|".join([*kept, "max_redirects;0"])
