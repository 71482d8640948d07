"""EI_TLS_CERT / EI_TLS_KEY as settings: both or neither, empty means unset, the files are
checked when the settings are parsed (tests/integration/test_tls.py loads real ones)."""

from __future__ import annotations

from pathlib import Path

import pytest

from elastic_inference.core.errors import ConfigError
from elastic_inference.core.settings import GatewaySettings, parse_settings
from elastic_inference.core.tls import server_context
from tests.credentials import SECRET_ENV


def test_neither_or_empty_means_plain_http() -> None:
    for environ in ({}, {"EI_TLS_CERT": "", "EI_TLS_KEY": ""}):
        settings = parse_settings(GatewaySettings, [], {**SECRET_ENV, **environ})
        assert server_context(settings.tls_cert, settings.tls_key) is None


@pytest.mark.parametrize("given", ["EI_TLS_CERT", "EI_TLS_KEY"])
def test_one_without_the_other_names_both(given: str, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="EI_TLS_CERT and EI_TLS_KEY go together"):
        parse_settings(GatewaySettings, [], {**SECRET_ENV, given: str(tmp_path / "x.pem")})


def test_a_directory_is_no_key(tmp_path: Path) -> None:
    cert = tmp_path / "cert.pem"
    cert.write_text("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")
    with pytest.raises(ConfigError, match=f"EI_TLS_KEY: cannot read {tmp_path}"):
        parse_settings(GatewaySettings, ["--tls-cert", str(cert), "--tls-key", str(tmp_path)],
                       {})
