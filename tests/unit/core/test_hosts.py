"""Host and Origin allow-lists (core/hosts.py) and their settings."""

from __future__ import annotations

import pytest

from elastic_inference.core.errors import ConfigError
from elastic_inference.core.hosts import (
    LOOPBACK_HOSTS,
    HostPolicy,
    default_hosts,
    host_of,
    local_hosts,
    parse_origin,
)
from elastic_inference.core.settings import (
    GatewaySettings,
    UpSettings,
    WebsocketSettings,
    parse_settings,
)
from tests.credentials import SECRET_ENV


def test_default_is_loopback_plus_a_specific_listen_address() -> None:
    assert default_hosts("0.0.0.0") == LOOPBACK_HOSTS
    assert default_hosts("::") == LOOPBACK_HOSTS
    assert default_hosts("127.0.0.1") == LOOPBACK_HOSTS
    assert default_hosts("::1") == LOOPBACK_HOSTS
    assert default_hosts("192.168.1.5") == (*LOOPBACK_HOSTS, "192.168.1.5")
    assert default_hosts("fe80::1") == (*LOOPBACK_HOSTS, "[fe80::1]")
    # ei up on a wildcard address adds this machine's own names, never a wildcard.
    assert local_hosts("127.0.0.1") == LOOPBACK_HOSTS
    extra = local_hosts("0.0.0.0")[len(LOOPBACK_HOSTS):]
    assert all(h != "*" and not h.startswith(".") for h in extra)


@pytest.mark.parametrize(("header", "host"), [
    ("127.0.0.1:8080", "127.0.0.1"), ("LocalHost.", "localhost"), ("[::1]:80", "[::1]"),
    ("[0:0::1]", "[::1]"), ("ei.example.com", "ei.example.com"),
    ("::1", None), ("[::1", None), ("[nope]", None), ("a@b", None), ("a b", None), ("", None),
    (None, None), ("a:99999999", None),
])
def test_host_header_is_normalised_or_refused(header: str | None, host: str | None) -> None:
    assert host_of(header) == host


def test_default_policy_allows_loopback_only() -> None:
    policy = HostPolicy.build(())
    for ok in ("127.0.0.1:8080", "localhost", "[::1]:8080", "LOCALHOST"):
        assert policy.allows_host(ok), ok
    for bad in ("evil.example", "localhost.evil.example", "127.0.0.1.nip.io", "10.0.0.1",
                None, ""):
        assert not policy.allows_host(bad), bad


def test_domain_pattern_matches_domain_and_subdomains_only() -> None:
    policy = HostPolicy.build([".example.com", "10.0.0.7"])
    for ok in ("example.com", "ei.example.com:443", "a.b.example.com", "10.0.0.7:8080"):
        assert policy.allows_host(ok), ok
    for bad in ("badexample.com", "example.com.evil", "localhost", "10.0.0.70"):
        assert not policy.allows_host(bad), bad


def test_star_only_when_listed() -> None:
    assert HostPolicy.build(["*"]).allows_host("anything.example")
    assert HostPolicy.build(["*"]).allows_origin("https://anything.example")
    assert not HostPolicy.build(["x.example"]).allows_host("y.example")


def test_origins_default_to_the_allowed_hosts_on_http_and_https() -> None:
    policy = HostPolicy.build(())
    for ok in ("http://127.0.0.1:8080", "https://localhost", "http://[::1]:9"):
        assert policy.allows_origin(ok), ok
    for bad in ("null", "http://evil.example", "ftp://localhost", "http://127.0.0.1.evil.example",
                "http://localhost/path", "http://user@localhost", "*", ""):
        assert not policy.allows_origin(bad), bad


def test_listed_origins_are_exact() -> None:
    policy = HostPolicy.build(["ei.example.com"], ["https://ei.example.com"])
    assert policy.allows_origin("https://ei.example.com")
    assert policy.allows_origin("HTTPS://EI.example.com:443")  # default port, any case
    for bad in ("http://ei.example.com", "https://ei.example.com:8443",
                "https://other.example.com"):
        assert not policy.allows_origin(bad), bad
    assert parse_origin("http://h:80") == "http://h"
    assert parse_origin("http://[::1]:8080") == "http://[::1]:8080"


@pytest.mark.parametrize("cls", [GatewaySettings, WebsocketSettings, UpSettings])
def test_settings_parse_and_reject_with_the_variable_named(
        cls: type[GatewaySettings | WebsocketSettings | UpSettings]) -> None:
    s = parse_settings(cls, [], {**SECRET_ENV,
                                 "EI_ALLOWED_HOSTS": "ei.example.com, .example.org,[::1]",
                                 "EI_ALLOWED_ORIGINS": "https://ei.example.com"})
    assert s.allowed_hosts == ("ei.example.com", ".example.org", "[::1]")
    assert s.allowed_origins == ("https://ei.example.com",)
    for name, value in (("EI_ALLOWED_HOSTS", "ei.example.com:8080"),
                        ("EI_ALLOWED_HOSTS", "https://ei.example.com"),
                        ("EI_ALLOWED_HOSTS", "a b"),
                        ("EI_ALLOWED_ORIGINS", "ei.example.com"),
                        ("EI_ALLOWED_ORIGINS", "https://ei.example.com/path"),
                        ("EI_ALLOWED_ORIGINS", "ws://ei.example.com")):
        with pytest.raises(ConfigError, match=name):
            parse_settings(cls, [], {**SECRET_ENV, name: value})


def test_the_servers_own_origin_passes_when_its_host_is_given() -> None:
    policy = HostPolicy.build(["ei.example.com"], ["https://other.example.com"])
    assert not policy.allows_origin("https://ei.example.com")
    assert policy.allows_origin("https://ei.example.com", "ei.example.com")
    assert policy.allows_origin("http://ei.example.com:8080", "EI.example.com:8080")
    assert policy.allows_origin("http://ei.example.com", "ei.example.com:80")
    assert not policy.allows_origin("http://ei.example.com:8080", "ei.example.com")
    assert not policy.allows_origin("http://evil.example", "ei.example.com")
    assert not policy.allows_origin("null", "ei.example.com")
