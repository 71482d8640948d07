"""core.runtime: socket buffer caps for the live video hops, thread deaths, drain deadline."""

from __future__ import annotations

import logging
import signal
import socket
import subprocess
import sys
import textwrap
import time

import pytest

from elastic_inference.core.runtime import (
    EXIT_FORCED,
    EXIT_THREAD_DIED,
    LIVE_SOCKET_BUFFER,
    Progress,
    ServiceRuntime,
    cap_socket_buffers,
)
from tests.fakes import FakeClock


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


# --- a process never wedges: thread deaths and the drain deadline ------------------------------

_PRELUDE = """
import logging, queue, sys, threading, time
from elastic_inference.core.runtime import ServiceRuntime, setup_logging
setup_logging()
runtime = ServiceRuntime("t", drain_timeout=float(sys.argv[1]))
runtime.install_signal_handlers()
stuck = queue.Queue(maxsize=1)
stuck.put(None)
print("ready", flush=True)
"""


def run_script(body: str, drain_timeout: float = 2.0) -> subprocess.Popen[str]:
    proc = subprocess.Popen([sys.executable, "-c", _PRELUDE + textwrap.dedent(body),
                             str(drain_timeout)], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
    return proc


def finish(proc: subprocess.Popen[str], timeout: float = 30.0) -> str:
    """The process's output once it exited by itself; killed (and failed) after ``timeout``."""
    try:
        return proc.communicate(timeout=timeout)[0]
    except subprocess.TimeoutExpired:
        proc.kill()
        out = proc.communicate()[0]
        raise AssertionError(f"still running after {timeout:.0f} s:\n{out}") from None


def test_a_thread_that_dies_ends_the_process_with_status_70() -> None:
    proc = run_script("""
        runtime.start_thread(lambda: 1 / 0, "boom")
        runtime.stop.wait(30)  # a main loop noticing the stop
        sys.exit(runtime.exit_code)
    """)
    out = finish(proc)
    assert proc.returncode == EXIT_THREAD_DIED == 70
    assert "thread boom died unexpectedly" in out and "ZeroDivisionError" in out


def test_a_dead_thread_ends_the_process_even_when_the_main_thread_is_stuck() -> None:
    started = time.monotonic()
    proc = run_script("""
        runtime.start_thread(lambda: 1 / 0, "boom")
        stuck.put(None)  # blocked for good, like a main thread waiting on the dead publisher
    """, drain_timeout=1.0)
    out = finish(proc)
    assert proc.returncode == EXIT_THREAD_DIED, out
    assert time.monotonic() - started < 20
    assert "still running 1 s after being told to stop" in out


def test_sigterm_ends_a_stuck_process_within_the_drain_timeout() -> None:
    proc = run_script("""
        stuck.put(None)  # never returns by itself
    """, drain_timeout=2.0)
    sent = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    out = finish(proc)
    took = time.monotonic() - sent
    assert proc.returncode == EXIT_FORCED, out
    assert took > 1.5 and took < 20, took  # the deadline, not at once and not never
    assert "draining (at most 2 s)" in out and "exiting now with status 1" in out


def test_a_second_sigterm_exits_at_once_even_when_stuck() -> None:
    proc = run_script("""
        stuck.put(None)
    """, drain_timeout=600.0)
    proc.send_signal(signal.SIGTERM)
    time.sleep(0.5)
    proc.send_signal(signal.SIGTERM)
    out = finish(proc)
    assert proc.returncode == EXIT_FORCED and "second SIGTERM, exiting now" in out, out


def test_a_clean_thread_end_is_not_a_failure() -> None:
    runtime = ServiceRuntime("t")
    runtime.start_thread(lambda: None, "done").join(5)
    assert runtime.exit_code == 0 and not runtime.stop.is_set()


def test_progress_stalls_only_when_busy_and_nothing_moved_for_the_limit() -> None:
    clock = FakeClock()
    progress = Progress(10.0, clock=clock)
    clock.t += 60
    assert not progress.stalled(busy=False)  # idle for a minute is fine
    assert progress.stalled(busy=True)
    progress.moved()
    clock.t += 9
    assert not progress.stalled(busy=True)
    clock.t += 2
    assert progress.stalled(busy=True)
