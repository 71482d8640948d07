"""The live websocket message format: what the websocket service sends, the gateway relays
and browsers and tests read (doc/api.md, "Live results").

A frame's JPEG goes to a client once, whatever the number of inference types: the first
result of a frame travels with it in a binary message, every other result of the stream as a
text message.

Binary message: 4-byte big-endian header length N, N bytes of UTF-8 JSON
``{"stream": id, "id": entry_id, "result": {...}}``, then the original JPEG bytes. Text
messages: ``{"result": {...}, "stream": id, "id": entry_id}`` (a result without its JPEG:
another type's result for a frame already sent, a late one, or one whose frame is no longer
stored), ``{"streams": [...]}``, ``{"tracks": {...}}`` (an entry of ``ei:tracks:{stream}`` as
``ei track`` wrote it: seq, type, tracks, counts; doc/analytics.md "Wire") and
``{"error": "..."}`` from the server, ``{"subscribe": [ids] | "*"}`` from a client. Results
and tracks follow the same subscription as frames; a slow client is kept the newest frame per
stream and the newest result and tracks per stream and type.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Iterable
from typing import Any

from .errors import SubscribeError
from .keys import STREAM_ID_RE

#: The websocket endpoint, on the websocket service and on the gateway's same-origin relay.
WS_PATH = "/ws"
#: Most stream ids one subscribe message may name (the registry holds far fewer in practice).
MAX_SUBSCRIBE_IDS = 1000
#: Clients only send small control messages; anything bigger is refused by the protocol layer.
MAX_INCOMING_BYTES = 64 * 1024
#: A frame message: an 8 MiB JPEG at most plus its header (what a relay accepts upstream).
MAX_FRAME_MESSAGE_BYTES = 16 * 1024 * 1024

_LEN = struct.Struct(">I")


def encode_frame(stream: str, entry_id: str, result: dict[str, Any], jpeg: bytes) -> bytes:
    """One binary message: length-prefixed JSON header, then the untouched JPEG bytes."""
    header = json.dumps({"stream": stream, "id": entry_id, "result": result},
                        separators=(",", ":")).encode()
    return b"".join((_LEN.pack(len(header)), header, jpeg))


def encode_result(stream: str, entry_id: str, result: dict[str, Any]) -> str:
    """One text message: a result whose frame's JPEG the client already has, or will not
    get (doc/api.md, "Result")."""
    return json.dumps({"result": result, "stream": stream, "id": entry_id},
                      separators=(",", ":"))


def decode_frame(data: bytes) -> tuple[dict[str, Any], bytes]:
    """Split a binary message into its header object and JPEG; ValueError when malformed.

    The server never needs this; it is the reference decoder for clients and tests.
    """
    if len(data) < _LEN.size:
        raise ValueError("message shorter than its 4-byte length prefix")
    (n,) = _LEN.unpack_from(data)
    if n > len(data) - _LEN.size:
        raise ValueError(f"header length {n} exceeds the message")
    header = json.loads(data[_LEN.size:_LEN.size + n].decode("utf-8"))
    if not isinstance(header, dict):
        raise ValueError("header is not a JSON object")
    return header, data[_LEN.size + n:]


def encode_tracks(raw: bytes) -> tuple[str, str]:
    """``(inference type, text message)`` for the ``tracks`` field of a live tracks entry;
    ValueError when it is not a JSON object (the entry is then skipped, never forwarded raw).

    The entry is re-serialised, not passed through, so only valid JSON reaches a browser.
    """
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise ValueError(f"tracks entry is not JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise ValueError("tracks entry is not a JSON object")
    infer_type = data.get("type")
    return (infer_type if isinstance(infer_type, str) else "",
            json.dumps({"tracks": data}, separators=(",", ":")))


def error_text(message: str) -> str:
    return json.dumps({"error": message})


def streams_text(streams: Iterable[str]) -> str:
    return json.dumps({"streams": sorted(streams)})


def parse_subscribe(text: str) -> frozenset[str] | None:
    """Parse ``{"subscribe": [ids]}`` or ``{"subscribe": "*"}``; ``None`` means every stream.

    Strict on purpose: a typo in a client should produce a clear error, not silence.
    """
    try:
        data = json.loads(text)
    except (ValueError, RecursionError) as exc:  # RecursionError: nested too deep
        raise SubscribeError(f"message is not valid JSON: {exc}") from exc
    if not isinstance(data, dict) or "subscribe" not in data:
        raise SubscribeError('expected an object {"subscribe": ["id", ...] | "*"}')
    extra = sorted(k for k in data if k != "subscribe")
    if extra:
        raise SubscribeError(f"unknown field(s) {', '.join(extra)}")
    value = data["subscribe"]
    if value == "*":
        return None
    if not isinstance(value, list):
        raise SubscribeError('"subscribe" must be a list of stream ids or "*"')
    if len(value) > MAX_SUBSCRIBE_IDS:
        raise SubscribeError(f'"subscribe" names more than {MAX_SUBSCRIBE_IDS} streams')
    bad = [v for v in value if not isinstance(v, str) or not STREAM_ID_RE.fullmatch(v)]
    if bad:
        raise SubscribeError(f"invalid stream id(s) {bad[:5]!r}: each must match "
                             f"{STREAM_ID_RE.pattern}")
    return frozenset(value)
