"""``as_text``: what redis-py returns (bytes, or str on a ``decode_responses`` client) as str."""

from __future__ import annotations


def as_text(value: bytes | str) -> str:
    """UTF-8 text of a Redis reply element; the project writes only UTF-8 names and ids."""
    return value.decode() if isinstance(value, bytes) else value
