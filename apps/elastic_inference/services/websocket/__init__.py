"""``ei websocket``: fans the live output of every stream out to browsers.

One reader per process follows ``ei:out:{stream}`` and ``ei:tracks:{stream}`` of all live
streams in one ``XREAD`` (core is sync redis, so each blocking read runs in a thread) and offers
every entry, encoded once, to each subscribed client's mailbox: the first result of each frame
as a binary message with the JPEG (so a frame's JPEG goes once, whatever the number of types,
see :mod:`.joiner`), every other result as a ``{"result": ...}`` text and tracks as
``{"tracks": ...}`` texts. A mailbox keeps only the latest pending frame per stream and the
latest text per stream, inference type and kind, and has its own sender task, so a slow
browser loses intermediate frames
(counted as skipped) instead of delaying the reader or any other client. The protocol is
described in doc/api.md; the message format is :mod:`..core.live`.
"""

from __future__ import annotations

import asyncio
import logging

from ...core.access import Gatekeeper
from ...core.hosts import HostPolicy
from ...core.metrics import WebsocketMetrics
from ...core.runtime import running
from ...core.sessions import Signer
from ...core.settings import WebsocketSettings, parse_settings
from .hub import MAX_PENDING_TEXT, Hub, Mailbox
from .service import WebsocketService

__all__ = ["MAX_PENDING_TEXT", "Hub", "Mailbox", "WebsocketService", "main"]

log = logging.getLogger(__name__)


def main(argv: list[str]) -> int:
    """``ei websocket``: parse settings, serve until SIGTERM/SIGINT, exit 0."""
    settings = parse_settings(WebsocketSettings, argv, prog="ei websocket")
    with running("websocket", settings) as (runtime, client):
        if settings.no_auth:
            log.warning("websocket: authentication is OFF (EI_NO_AUTH): anyone who can reach "
                        "%s:%d sees every stream", settings.host, settings.port)
        gatekeeper = Gatekeeper(client, None if settings.no_auth else
                                Signer(settings.session_secret), enabled=not settings.no_auth)
        service = WebsocketService(client, WebsocketMetrics(runtime.registry),
                                   gatekeeper=gatekeeper,
                                   max_clients=settings.max_clients, stop=runtime.stop,
                                   limits=settings.connection_limits(),
                                   hosts=HostPolicy.build(settings.allowed_hosts,
                                                          settings.allowed_origins,
                                                          settings.host))
        asyncio.run(service.run(settings.host, settings.port,
                                started=lambda _port: runtime.ready.set()))
    log.info("websocket: stopped")
    return runtime.exit_code
