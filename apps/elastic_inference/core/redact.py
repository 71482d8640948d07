"""Hide credentials in URLs before they reach a log line, an error message or an API answer.

One function, :func:`redact_url`, for every URL the project shows: Redis URLs, camera and
job sources. It works on any text (a URL, or a message with URLs in it) and on malformed URLs
too, so a typo such as ``htp://:secret@h/0`` or ``redis:/:secret@h`` is hidden as well as a good
URL. It masks the userinfo (``user:PASSWORD@``, or a bare ``TOKEN@``) and the values of query or
fragment parameters whose name looks secret (``password``, ``token``, ``api_key``,
``X-Amz-Signature``, ...).

A password must percent-encode ``/``, ``?`` and ``#`` (RFC 3986); otherwise even a URL parser
cannot tell where it ends. :func:`ambiguous_credentials` finds such URLs, so the places that
accept a URL (``EI_REDIS_URL``, job and stream sources) refuse them instead of storing or
logging something that cannot be redacted.
"""

from __future__ import annotations

import re
from urllib.parse import unquote, urlsplit

MASK = "***"

#: ``scheme:`` (any number of slashes, even none) then userinfo up to the last ``@`` before
#: the path. ``user`` may hold ``@`` (a bare token); ``password`` may hold ``@`` and ``:``.
_USERINFO = re.compile(r"(?P<head>\b[A-Za-z][A-Za-z0-9+.-]*:/*)"
                       r"(?P<user>[^\s/?#:]*)(?P<password>:[^\s/?#]*)?@")
#: ``name=value`` after ``?``, ``&``, ``;`` or ``#``.
_PARAM = re.compile(r"(?P<name>[?&;#][^=&;#\s]*=)(?P<value>[^&;#\s]*)")
#: Parameter names whose values are masked (matched inside the percent-decoded name).
_SECRET_NAME = re.compile(r"pass|pwd|token|secret|key|auth|sig|credential|session",
                          re.IGNORECASE)


def _userinfo(m: re.Match[str]) -> str:
    if m.group("password") is not None:
        return f"{m.group('head')}{m.group('user')}:{MASK}@"
    return f"{m.group('head')}{MASK}@"


def _param(m: re.Match[str]) -> str:
    if m.group("value") and _SECRET_NAME.search(unquote(m.group("name"))):
        return m.group("name") + MASK
    return m.group(0)


def redact_url(text: str) -> str:
    """``text`` with every URL password, userinfo token and secret-looking parameter value
    replaced by ``***``; anything else is left as it was (redacting twice changes nothing)."""
    return _PARAM.sub(_param, _USERINFO.sub(_userinfo, text))


def ambiguous_credentials(url: str) -> str:
    """Why :func:`redact_url` could not be sure to hide ``url``'s password, or ``""``.

    An ``@`` after the host means a password holding ``/``, ``?`` or ``#`` unencoded (or an
    ``@`` in a path, which the URLs the project takes never need).
    """
    try:
        parts = urlsplit(url)
    except ValueError:
        return "it is not a valid URL"
    if "@" in parts.path or "@" in parts.query or "@" in parts.fragment:
        return ("it has '@' after the host: percent-encode '/', '?', '#' and '@' in a "
                "password (%2F, %3F, %23, %40)")
    return ""
