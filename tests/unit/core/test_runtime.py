"""Socket buffer caps for the live video hops (core.runtime)."""

from __future__ import annotations

import logging
import socket

import pytest

from elastic_inference.core.runtime import LIVE_SOCKET_BUFFER, cap_socket_buffers


def test_caps_the_send_and_receive_buffers_it_is_asked_to() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        before_recv = sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
        cap_socket_buffers(sock, send=LIVE_SOCKET_BUFFER)
        # Linux doubles the value for its bookkeeping; other kernels store it as given.
        assert LIVE_SOCKET_BUFFER <= sock.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF) \
            <= 2 * LIVE_SOCKET_BUFFER
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF) == before_recv
        cap_socket_buffers(sock, recv=64 * 1024)
        assert 64 * 1024 <= sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF) <= 128 * 1024


def test_a_closed_or_missing_socket_is_left_alone(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="elastic_inference.core.runtime")
    cap_socket_buffers(None, send=LIVE_SOCKET_BUFFER)
    assert not caplog.records
    sock = socket.socket()
    sock.close()
    cap_socket_buffers(sock, send=LIVE_SOCKET_BUFFER)  # a connection that just went away
    assert [r.getMessage()[:28] for r in caplog.records] == ["socket buffers not capped: ["]


def test_health_server_closes_connections_that_never_finish_a_request(
        monkeypatch: pytest.MonkeyPatch) -> None:
    import urllib.request

    from elastic_inference.core import runtime as runtime_module

    monkeypatch.setattr(runtime_module, "HEALTH_SOCKET_TIMEOUT_S", 0.5)
    rt = runtime_module.ServiceRuntime("test")
    port = rt.serve_health("127.0.0.1", 0)
    socks = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(10)]
    try:
        for sock in socks:
            sock.sendall(b"GET /healthz HTTP/1.1\r\n")  # never completed
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as resp:
            assert resp.status == 200  # a thread per stuck connection; probes still answered
        assert all(sock.recv(100) == b"" for sock in socks)  # closed, well within 10 s each
    finally:
        for sock in socks:
            sock.close()
        rt.close()
