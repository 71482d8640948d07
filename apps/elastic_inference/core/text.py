"""Text helpers: Redis replies as str (``as_text``), JSON request bodies read strictly and
JSON values shown in error messages."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from .errors import InvalidMessage


def as_text(value: bytes | str) -> str:
    """UTF-8 text of a Redis reply element; the project writes only UTF-8 names and ids."""
    return value.decode() if isinstance(value, bytes) else value


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
