"""Text helpers: Redis replies as str (``as_text``), JSON request bodies read strictly, JSON
values shown in error messages, and the control-character check every network name passes."""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Sequence
from typing import Any

from .errors import InvalidMessage


def as_text(value: bytes | str) -> str:
    """UTF-8 text of a Redis reply element; the project writes only UTF-8 names and ids."""
    return value.decode() if isinstance(value, bytes) else value


def has_control_characters(text: str) -> bool:
    """True if ``text`` holds a control character (C0, DEL or C1): no name, path, URL or label
    the project accepts from the network may, since logs, terminals and files would show them
    as something else or not at all."""
    return any(unicodedata.category(c) == "Cc" for c in text)


def shown(value: Any) -> str:
    """A JSON value as an error message shows it: short, one line."""
    text = json.dumps(value, ensure_ascii=True)
    return text if len(text) <= 40 else text[:37] + "..."


def load_json_body(body: bytes | str) -> Any:
    """A request body parsed as JSON, or InvalidMessage saying why it cannot be."""
    try:
        data = json.loads(body)
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        raise InvalidMessage(f"the body is not valid JSON: {exc}") from exc
    try:  # "\ud800" is valid JSON but no Unicode text: nothing could store or show it
        json.dumps(data, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidMessage("the body holds a lone surrogate (an escape in \\ud800-\\udfff "
                             "without its pair), which is not valid Unicode") from exc
    return data


def json_object_body(body: bytes | str, fields: Sequence[str], what: str,
                     example: str) -> dict[str, Any]:
    """A request body that must be a JSON object of ``fields`` only (``what`` names the
    thing in messages: "a job has ..."); InvalidMessage naming the unknown ones, at most five,
    or showing ``example`` when the body is no object."""
    data = load_json_body(body)
    if not isinstance(data, dict):
        raise InvalidMessage(f"the body must be a JSON object such as {example}")
    unknown = sorted(set(data) - set(fields))
    if unknown:
        names = ", ".join(shown(k) for k in unknown[:5]) + (", ..." if len(unknown) > 5 else "")
        raise InvalidMessage(f"unknown field(s) {names}: {what} has {', '.join(fields)}")
    return data
