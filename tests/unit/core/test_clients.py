"""Client identity, per-client connection caps and bounded writes (core/clients.py)."""

from __future__ import annotations

import asyncio

import pytest

from elastic_inference.core.clients import (
    ConnectionCaps,
    bounded_send,
    client_from,
    client_ip,
    client_key,
    finished_within,
    parse_networks,
)
from elastic_inference.core.errors import ConfigError
from elastic_inference.core.settings import GatewaySettings, WebsocketSettings, parse_settings
from tests.credentials import SECRET_ENV

PROXIES = parse_networks(["10.0.0.0/8", "fd00::/8"])


def test_parse_networks_accepts_addresses_and_cidrs_and_names_a_bad_one() -> None:
    nets = parse_networks(["127.0.0.1", " 10.1.2.3/8 ", "::1", "2001:db8::/32"])
    assert [str(n) for n in nets] == ["127.0.0.1/32", "10.0.0.0/8", "::1/128", "2001:db8::/32"]
    with pytest.raises(ValueError, match=r"'10\.0\.0\.300' is not an IP address or network"):
        parse_networks(["10.0.0.0/8", "10.0.0.300"])


def test_headers_from_an_untrusted_peer_are_ignored() -> None:
    assert client_ip("203.0.113.5", "198.51.100.7", "198.51.100.8") == "203.0.113.5"
    assert client_ip("203.0.113.5", "198.51.100.7", None, PROXIES) == "203.0.113.5"
    assert client_ip("::ffff:192.0.2.1", None, None) == "192.0.2.1"  # dual-stack socket


def test_a_trusted_proxy_names_the_client() -> None:
    # The right-most hop that is not a trusted proxy: a client cannot spoof by prepending.
    assert client_ip("10.0.0.2", "1.2.3.4, 198.51.100.7", None, PROXIES) == "198.51.100.7"
    assert client_ip("10.0.0.2", "198.51.100.7, 10.9.9.9", None, PROXIES) == "198.51.100.7"
    assert client_ip("10.0.0.2", None, "198.51.100.8", PROXIES) == "198.51.100.8"
    assert client_ip("10.0.0.2", "198.51.100.7", "198.51.100.8", PROXIES) == "198.51.100.7"
    # Nothing usable: the last trusted hop stands for the client.
    assert client_ip("10.0.0.2", "10.0.0.3", None, PROXIES) == "10.0.0.3"
    assert client_ip("10.0.0.2", "unknown, 10.0.0.3", None, PROXIES) == "10.0.0.3"
    assert client_ip("10.0.0.2", None, "not-an-ip", PROXIES) == "10.0.0.2"
    assert client_ip("fd00::1", "[2001:db8::5]", None, PROXIES) == "2001:db8::5"


def test_repeated_forwarding_headers_count_as_one_list() -> None:
    headers = {"X-Forwarded-For": ["198.51.100.7", "203.0.113.9"], "X-Real-IP": ["192.0.2.4"]}

    def values(name: str) -> list[str]:
        return headers.get(name, [])

    assert client_from("10.0.0.2", values, PROXIES) == "203.0.113.9"
    assert client_from("192.0.2.99", values, PROXIES) == "192.0.2.99"
    del headers["X-Forwarded-For"]
    assert client_from("10.0.0.2", values, PROXIES) == "192.0.2.4"


def test_ipv6_clients_are_counted_by_their_64() -> None:
    assert client_key("2001:db8:1:2:aaaa::1") == "2001:db8:1:2::/64"
    assert client_key("2001:db8:1:2:bbbb::9") == client_key("2001:db8:1:2:aaaa::1")
    assert client_key("192.0.2.1") == "192.0.2.1"


def test_caps_per_client_and_in_total() -> None:
    caps = ConnectionCaps("MJPEG viewers", total=5, per_client=2)
    assert caps.admit("a") is None and caps.admit("a") is None
    mine = caps.admit("a")
    assert mine is not None and mine.per_client and mine.limit == 2
    assert mine.message == "too many MJPEG viewers from a (2); close one first"
    assert caps.admit("b") is None and caps.admit("b") is None and caps.admit("c") is None
    full = caps.admit("d")
    assert full is not None and not full.per_client
    assert full.message == "too many MJPEG viewers (5); retry later"
    assert len(caps) == 5  # refusals took nothing
    caps.release("a")
    assert caps.admit("d") is None and caps.held == {"a": 1, "b": 2, "c": 1, "d": 1}
    for key in ("a", "b", "b", "c", "d"):
        caps.release(key)
    assert len(caps) == 0 and not caps.held


def test_finished_within_leaves_a_slow_write_running_and_collects_its_error() -> None:
    async def scenario() -> None:
        assert await finished_within(asyncio.sleep(0.01), 5)
        gate: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        assert not await finished_within(gate, 0.05)
        assert not gate.cancelled()  # still pending: the caller closes the connection
        gate.set_exception(ConnectionError("closed"))
        await asyncio.sleep(0)
        with pytest.raises(ValueError):  # an error within the time is the caller's
            await finished_within(_fail(), 5)

    async def _fail() -> None:
        raise ValueError("boom")

    loop_errors: list[dict[str, object]] = []

    async def main() -> None:
        asyncio.get_running_loop().set_exception_handler(lambda _l, ctx: loop_errors.append(ctx))
        await scenario()

    asyncio.run(main())
    assert loop_errors == []  # no "exception was never retrieved"


def test_bounded_send_drops_a_client_whose_message_does_not_go_out() -> None:
    dropped: list[str] = []
    sent: list[str] = []

    async def scenario() -> None:
        stuck: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        async def send(message: str) -> None:
            if message == "stuck":
                await stuck
            sent.append(message)

        bounded = bounded_send(send, 0.05, lambda: dropped.append("x"), "c")
        await bounded("a")
        assert dropped == []
        await bounded("stuck")
        assert dropped == ["x"] and sent == ["a"]
        stuck.set_result(None)

    asyncio.run(scenario())


def test_settings_build_the_limits_and_reject_a_bad_proxy() -> None:
    limits = parse_settings(GatewaySettings, ["--trusted-proxies", "10.0.0.0/8,::1",
                                              "--max-mjpeg-per-client", "2",
                                              "--header-timeout", "3"],
                            SECRET_ENV).connection_limits()
    assert [str(n) for n in limits.trusted] == ["10.0.0.0/8", "::1/128"]
    assert (limits.mjpeg_per_client, limits.ws_per_client, limits.header_timeout,
            limits.write_timeout) == (2, 20, 3.0, 20.0)
    ws = parse_settings(WebsocketSettings, [], {**SECRET_ENV, "EI_MAX_WS_PER_CLIENT": "7"})
    assert ws.connection_limits().ws_per_client == 7 and ws.connection_limits().trusted == ()
    with pytest.raises(ConfigError, match=r"EI_TRUSTED_PROXIES='10.0.0.0/33' is invalid"):
        parse_settings(GatewaySettings, [], {**SECRET_ENV, "EI_TRUSTED_PROXIES": "10.0.0.0/33"})
    with pytest.raises(ConfigError, match=r"--write-timeout='0' is invalid: must be > 0"):
        parse_settings(WebsocketSettings, ["--write-timeout", "0"])
