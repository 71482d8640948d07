"""What a ``/api/sources`` request may store and what its answers show (doc/sources.md).

:func:`.sources.parse_source_config` checks a body's shape and fields; here is what needs more
than the body: whether a URL is allowed (``EI_SOURCE_ALLOW``, the same SSRF rules as analysis
sources) or a file is in the media directory (:func:`check_source`, sync: it may resolve a host
or read a network volume), a ``PUT`` that sends back the masked URL it was shown
(:func:`keep_stored_url`), and the state the stream registry reports (:func:`source_answer`).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from .errors import InvalidMessage
from .jobrequest import resolve_source
from .netguard import SourcePolicy
from .redact import redact_url
from .registry import Member
from .sources import SourceConfig, public_source

#: Registry details copied into a source's ``state`` as they are (the pool adds ``replica``, and
#: ``error`` when it could not open the source).
STATE_FIELDS = ("replica", "reconnects", "error")


def check_source(config: SourceConfig, media_dir: Path, policy: SourcePolicy) -> None:
    """InvalidMessage unless ``config``'s source may be read: a URL ``policy`` allows
    (redirects included) or a file inside ``media_dir``; a device index is taken as it is (it
    is read on a replica's host, which the gateway cannot see). The message never shows a
    URL's credentials."""
    if config.kind == "webcam":
        return
    try:
        resolve_source(config.source, media_dir, policy)
    except InvalidMessage as exc:
        # The checks name hosts and files, never userinfo; masked again all the same.
        raise InvalidMessage(redact_url(str(exc))) from exc


def keep_stored_url(config: SourceConfig, stored: SourceConfig | None) -> SourceConfig:
    """``config`` with the stored URL when its ``source`` is the masked form the API showed
    (``public_source``): a client that never saw the credentials keeps them by sending back
    what it was shown."""
    if stored is not None and stored.kind == "url" and stored.source != config.source \
            and config.source == public_source(stored.source):
        return replace(config, source=stored.source)
    return config


def source_state(config: SourceConfig, member: Member | None) -> dict[str, Any]:
    """``disabled``, ``pending`` (enabled, no reader heartbeats) or what the reader reports:
    its state, replica, reconnects and measured frame rate."""
    if not config.enabled:
        return {"state": "disabled"}
    if member is None:
        return {"state": "pending"}
    info = member.info
    state: dict[str, Any] = {"state": str(info.get("state", "live"))}
    for name in STATE_FIELDS:
        if name in info:
            state[name] = info[name]
    fps = info.get("sent_fps", info.get("fps"))
    if isinstance(fps, (int, float)) and not isinstance(fps, bool):
        state["fps"] = fps
    return state


def source_answer(config: SourceConfig, member: Member | None) -> dict[str, Any]:
    """A source as the API answers it: credentials masked, with its state."""
    return {**config.to_json(public=True), "state": source_state(config, member)}


def source_answers(configs: list[SourceConfig], members: list[Member]) -> list[dict[str, Any]]:
    """Each source with the state of the registry member of its id."""
    by_id = {m.id: m for m in members}
    return [source_answer(c, by_id.get(c.id)) for c in configs]
