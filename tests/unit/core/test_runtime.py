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
