"""EI_SOURCE_ALLOW: which job source URLs pass, and why the others are refused.

DNS answers come from a small table (the policy's ``resolver`` interface), except where the
real resolver is the point (``localhost``).
"""

from __future__ import annotations

import ipaddress
import socket

import pytest

from elastic_inference.core.errors import ConfigError
from elastic_inference.core.jobrequest import resolve_source
from elastic_inference.core.netguard import (
    Address,
    SourcePolicy,
    SourceRefused,
    own_addresses,
    resolve,
    special_kind,
)
from elastic_inference.core.settings import AnalysisSettings, GatewaySettings, parse_settings
from elastic_inference.core.sourceurl import ffmpeg_capture_options
from tests.credentials import SECRET_ENV

DNS = {
    "cam.example.com": ["93.184.215.14"],
    "cams.example.net": ["151.101.1.7"],
    "a.cams.example.net": ["151.101.1.8"],
    "rebound.example.com": ["169.254.169.254"],
    "inside.example.com": ["10.1.2.3"],
    "mixed.example.com": ["93.184.215.14", "127.0.0.1"],
    "v6.example.com": ["2a00:1450::5"],
    "public6.example.com": ["2606:4700::1111"],
    "public.example.com": ["8.8.8.8"],
    "mapped.example.com": ["::ffff:127.0.0.1"],
}
OWN = {ipaddress.ip_address("8.8.4.4")}


def fake_resolve(host: str, port: int) -> list[Address]:
    """An address as itself, a name from :data:`DNS` (IPv4-mapped unwrapped, as resolve())."""
    addrs = [ipaddress.ip_address(a) for a in DNS.get(host, [host])]
    return [a.ipv4_mapped if isinstance(a, ipaddress.IPv6Address) and a.ipv4_mapped else a
            for a in addrs]


def check(allow: str, url: str) -> list[Address]:
    return SourcePolicy.parse(allow.split(",")).check(url, fake_resolve, lambda: OWN)


@pytest.mark.parametrize(("allow", "url"), [
    ("cam.example.com", "rtsp://cam.example.com/live"),
    ("CAM.Example.com.", "http://cam.example.com:8080/x.mjpg"),
    ("*.example.net", "https://a.cams.example.net/v.mp4"),
    ("93.184.215.0/24", "http://cam.example.com/x"),  # listed network, unlisted name
    ("93.184.215.14", "http://93.184.215.14/x"),
    ("10.0.0.0/8", "rtsp://inside.example.com/x"),  # private, listed explicitly
    ("127.0.0.1", "http://127.0.0.1:1234/x"),  # loopback, listed explicitly
    ("2a00:1450::/32", "http://[2a00:1450::5]/x"),
    ("2a00:1450::/32", "http://v6.example.com/x"),
    ("public6.example.com", "https://public6.example.com/x"),
])
def test_allowed(allow: str, url: str) -> None:
    assert check(allow, url)


@pytest.mark.parametrize(("allow", "url", "reason"), [
    ("", "http://cam.example.com/x", "URL sources are off"),
    ("cam.example.com", "ftp://cam.example.com/x", "scheme 'ftp' is not allowed"),
    ("cam.example.com", "rtsps://cam.example.com/x", "scheme 'rtsps' is not allowed"),
    ("cam.example.com", "file:///etc/passwd", "scheme 'file'"),
    ("cam.example.com", "http://cams.example.net/x", "not in EI_SOURCE_ALLOW"),
    ("*.cams.example.net", "http://cams.example.net/x", "not in EI_SOURCE_ALLOW"),  # no apex
    ("cam.example.com", "http://169.254.169.254/latest/meta-data/", "not in EI_SOURCE_ALLOW"),
    # A listed name is no licence for a special address (DNS rebinding).
    ("rebound.example.com", "http://rebound.example.com/x", "169.254.169.254, a link-local"),
    ("inside.example.com", "http://inside.example.com/x", "10.1.2.3, a private"),
    ("mixed.example.com", "http://mixed.example.com/x", "127.0.0.1, a loopback"),
    ("mapped.example.com", "http://mapped.example.com/x", "127.0.0.1, a loopback"),
    ("public.example.com,8.8.8.8", "http://public.example.com/x", ""),  # control: allowed
    ("8.0.0.0/8", "http://8.8.4.4/x", "this machine's own addresses"),
    ("0.0.0.0/0", "http://0.0.0.0:80/x", "unspecified"),
    ("0.0.0.0/0", "http://169.254.169.254/x", "link-local"),  # a catch-all unlocks nothing
    ("8.8.4.4", "http://8.8.4.4/x", ""),  # an own address listed by itself
    ("224.0.0.0/4", "http://224.0.0.1/x", ""),  # a network of multicast addresses only
    ("224.0.0.1/32,0.0.0.0/0", "http://224.0.0.2/x", "multicast"),
    ("::/0", "http://[fe80::1]/x", "link-local"),
    ("fe80::/10", "http://[fe80::1]/x", ""),
    ("::/0", "http://[::1]:8080/x", "loopback"),
    ("cam.example.com", "http://cam.example.com/x", ""),
])
def test_refused_names_the_reason(allow: str, url: str, reason: str) -> None:
    if not reason:
        assert check(allow, url)
        return
    with pytest.raises(SourceRefused, match=reason):
        check(allow, url)


def test_only_networks_of_one_kind_unlock_special_addresses() -> None:
    assert check("0.0.0.0/0", "http://8.8.8.8/x")  # public: a catch-all lists it
    assert check("169.254.0.0/16", "http://169.254.169.254/x")
    assert check("::1", "http://[::1]/x")
    with pytest.raises(SourceRefused, match="loopback"):
        check("::/0", "http://[::1]/x")


@pytest.mark.parametrize("bad", ["cam/x", "cam.example.com:80", "*.", "a..b", "10.0.0.0/33",
                                 "caf\u00e9.example.com", "http://cam"])
def test_bad_entries_are_rejected_naming_them(bad: str) -> None:
    with pytest.raises(ValueError, match="is not a host name"):
        SourcePolicy.parse([bad])


def test_setting_is_parsed_and_checked_on_gateway_and_runner() -> None:
    env = {**SECRET_ENV, "EI_SOURCE_ALLOW": "cam.example.com, 10.0.0.0/8 ,::1"}
    settings: tuple[type[AnalysisSettings] | type[GatewaySettings], ...] = (
        AnalysisSettings, GatewaySettings)
    for cls in settings:
        policy = parse_settings(cls, [], env).source_policy()
        assert policy.names == frozenset({"cam.example.com"})
        assert [str(n) for n in policy.networks] == ["10.0.0.0/8", "::1/128"]
        with pytest.raises(ConfigError, match=r"EI_SOURCE_ALLOW.*not a host name"):
            parse_settings(cls, [], {**SECRET_ENV, "EI_SOURCE_ALLOW": "a/b"})
        assert not parse_settings(cls, [], SECRET_ENV).source_policy()  # default: no URL sources


def test_real_resolution_of_localhost_is_refused_unless_listed() -> None:
    policy = SourcePolicy.parse(["localhost"])
    with pytest.raises(SourceRefused, match="EI_SOURCE_ALLOW does not list explicitly"):
        policy.check("http://localhost:9/x")
    assert ipaddress.ip_address("127.0.0.1") in resolve("localhost", 80)


def test_own_addresses_include_loopback_and_the_host_name() -> None:
    own = own_addresses()
    assert ipaddress.ip_address("127.0.0.1") in own
    for info in socket.getaddrinfo(socket.gethostname(), 0, type=socket.SOCK_STREAM):
        assert ipaddress.ip_address(str(info[4][0]).split("%")[0]) in own
    assert special_kind(ipaddress.ip_address("127.0.0.1"), own)


def test_resolve_source_refuses_urls_by_default(tmp_path: object) -> None:
    with pytest.raises(SourceRefused, match="URL sources are off"):
        resolve_source("http://cam.example.com/x", tmp_path)  # type: ignore[arg-type]


def test_ffmpeg_redirects_are_turned_off_keeping_other_options() -> None:
    assert ffmpeg_capture_options(None) == "rtsp_transport;tcp|max_redirects;0"
    assert ffmpeg_capture_options("rtsp_transport;udp|max_redirects;8") == \
        "rtsp_transport;udp|max_redirects;0"
