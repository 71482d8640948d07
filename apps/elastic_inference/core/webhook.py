"""Webhook deliveries: a signed POST of the event JSON to the rule's URL, retried, never
redirected, to an address the outbound allow-list permits.

The body is signed with HMAC-SHA256 under ``EI_WEBHOOK_SECRET`` over ``TIMESTAMP.BODY``, sent
as ``X-EI-Signature: sha256=HEX`` with ``X-EI-Timestamp`` (epoch seconds): the receiver
recomputes it, and refuses a timestamp too far from its clock, so a captured request cannot be
replayed later (the timestamp is inside what is signed). Each try resolves the host, checks
every address against the allow-list (``EI_SOURCE_ALLOW``, as analysis job URLs are) and
connects to the checked address, so a name re-pointed between the check and the connection
(DNS rebinding) is not followed; a redirect answer is a failure, not followed.
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import logging
import random
import socket
import ssl
import time
from collections.abc import Callable
from urllib.parse import urlsplit

from .delivery import Delivery
from .netguard import Address, Resolver, SourcePolicy, SourceRefused, own_addresses, resolve
from .redact import redact_url

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-EI-Signature"
TIMESTAMP_HEADER = "X-EI-Timestamp"
DEFAULT_TIMEOUT = 5.0
DEFAULT_TRIES = 3
#: First retry after about this many seconds, doubling, each with +-50 % jitter (receivers
#: that failed together do not all get retried in the same instant).
DEFAULT_BACKOFF = 1.0
#: Answers worth trying again: the receiver is busy or briefly broken.
RETRY_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """``sha256=HEX``: HMAC-SHA256 under ``secret`` over ``TIMESTAMP.BODY``."""
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


class WebhookSender:
    """Sends one delivery with retries; True when a try got a 2xx answer."""

    def __init__(self, secret: str, policy: SourcePolicy, timeout: float = DEFAULT_TIMEOUT,
                 tries: int = DEFAULT_TRIES, backoff: float = DEFAULT_BACKOFF,
                 sleep: Callable[[float], object] = time.sleep,
                 resolver: Resolver = resolve,
                 own: Callable[[], set[Address]] = own_addresses) -> None:
        self._secret = secret
        self.policy = policy
        self.timeout = timeout
        self.tries = tries
        self.backoff = backoff
        self._sleep = sleep
        self._resolver = resolver
        self._own = own
        self._warned = False

    def __call__(self, delivery: Delivery) -> bool:
        where = redact_url(delivery.target)
        if not self._secret:
            if not self._warned:
                log.warning("webhook deliveries fail: EI_WEBHOOK_SECRET is not set, and an "
                            "unsigned event could be forged by anyone")
                self._warned = True
            return False
        for attempt in range(self.tries):
            if attempt:
                self._sleep(self.backoff * 2 ** (attempt - 1) * random.uniform(0.5, 1.5))
            try:
                status = self._post(delivery)
            except SourceRefused as exc:  # the allow-list or DNS says no: retrying won't help
                log.warning("webhook %s, event %s: refused: %s", where, delivery.event_id, exc)
                return False
            except (OSError, http.client.HTTPException) as exc:
                log.info("webhook %s, event %s: try %d of %d failed: %s", where,
                         delivery.event_id, attempt + 1, self.tries, exc)
                continue
            if 200 <= status < 300:
                return True
            log.info("webhook %s, event %s: try %d of %d answered %d", where,
                     delivery.event_id, attempt + 1, self.tries, status)
            if status not in RETRY_STATUS:
                return False
        log.warning("webhook %s, event %s: not delivered after %d tries", where,
                    delivery.event_id, self.tries)
        return False

    def _post(self, delivery: Delivery) -> int:
        """One POST to a checked address; the answer's status (redirects are not followed)."""
        addresses = self.policy.check(delivery.target, self._resolver, self._own,
                                      what="webhook")
        parts = urlsplit(delivery.target)
        https = parts.scheme.lower() == "https"
        host = parts.hostname or ""
        port = parts.port or (443 if https else 80)
        sock = socket.create_connection((str(addresses[0]), port), timeout=self.timeout)
        try:
            if https:  # verified against the URL's host name, as a browser would
                sock = ssl.create_default_context().wrap_socket(sock, server_hostname=host)
            conn = http.client.HTTPConnection(host, port, timeout=self.timeout)
            conn.sock = sock
            timestamp = str(int(time.time()))
            conn.request("POST", (parts.path or "/") + (f"?{parts.query}" if parts.query else ""),
                         body=delivery.payload, headers={
                             "Host": parts.netloc, "Content-Type": "application/json",
                             "User-Agent": "elastic-inference", TIMESTAMP_HEADER: timestamp,
                             SIGNATURE_HEADER: sign(self._secret, timestamp, delivery.payload)})
            response = conn.getresponse()
            response.read(64 * 1024)  # a little, so the connection ends cleanly
            return response.status
        finally:
            sock.close()
