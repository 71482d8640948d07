"""TLS for the gateway's listener (EI_TLS_CERT, EI_TLS_KEY): checked at start, never echoed.

A certificate and its key come as PEM files, both or neither. They are checked once, when the
settings are parsed, so a typo in a manifest stops the service with a message naming the
variable and the path; a message never holds the files' content. The context is the ``ssl``
module's server defaults (its cipher choice, no compression, no renegotiation) with TLS 1.2
as the oldest version: 1.0 and 1.1 are deprecated (RFC 8996).
"""

from __future__ import annotations

import ssl
from pathlib import Path

from .errors import ConfigError

CERT_VAR = "EI_TLS_CERT"
KEY_VAR = "EI_TLS_KEY"


def _readable(var: str, path: Path, marker: bytes, what: str) -> None:
    try:
        head = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{var}: cannot read {path}: {exc.strerror or exc}") from None
    if marker not in head:
        raise ConfigError(f"{var}: {path} holds no PEM {what}")


def check_pair(cert: str, key: str) -> None:
    """Both or neither (empty: unset); each a readable PEM file of the right kind (raises
    ConfigError)."""
    if bool(cert) != bool(key):
        raise ConfigError(f"{CERT_VAR} and {KEY_VAR} go together: set both (HTTPS) or "
                          f"neither (plain HTTP)")
    if cert and key:
        _readable(CERT_VAR, Path(cert), b"-----BEGIN CERTIFICATE-----", "certificate")
        _readable(KEY_VAR, Path(key), b"PRIVATE KEY-----", "private key")


def _no_passphrase() -> bytes:
    """Given to ``load_cert_chain`` so an encrypted key fails instead of prompting."""
    raise ConfigError(f"{KEY_VAR}: the key is encrypted; give an unencrypted key file "
                      f"(mounted from a Secret)")


def server_context(cert: str, key: str) -> ssl.SSLContext | None:
    """A server context for ``cert`` and ``key``, None when neither is set (raises
    ConfigError naming the variables and paths)."""
    check_pair(cert, key)
    if not cert:
        return None
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        ctx.load_cert_chain(cert, key, password=_no_passphrase)
    except ssl.SSLError as exc:
        # The reason (e.g. KEY_VALUES_MISMATCH) names a check, never the files' bytes.
        raise ConfigError(f"{CERT_VAR} ({cert}) and {KEY_VAR} ({key}) do not load as a "
                          f"certificate and its key: {exc.reason or 'invalid PEM'}") from None
    return ctx
