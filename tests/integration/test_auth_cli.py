"""``ei auth`` as a subprocess on a real redis-server: passwords never from argv, a token
printed once on the last line, listings without secrets."""

from __future__ import annotations

import os
import pty
import select
import signal
import subprocess
import sys
import termios
import time
from pathlib import Path

import pytest
import redis

from elastic_inference.core import keys
from elastic_inference.core.auth import Principal, Role, token_digest
from elastic_inference.core.authstore import AuthStore
from tests.conftest import REPO
from tests.processes import environment

pytestmark = pytest.mark.integration

PASSWORD = "correct horse battery staple"


def ei_auth(redis_url: str, *args: str, stdin: str | None = None
            ) -> subprocess.CompletedProcess[str]:
    """``ei auth ARGS`` with EI_REDIS_URL in its environment; no terminal, so no prompt."""
    return subprocess.run([sys.executable, "-m", "elastic_inference.cli", "auth", *args],
                          input=stdin, stdin=None if stdin is not None else subprocess.DEVNULL,
                          capture_output=True, text=True, cwd=REPO, timeout=60, check=False,
                          env=environment(EI_REDIS_URL=redis_url))


def test_a_user_added_with_a_password_file_logs_in(redis_url: str, redis_client: redis.Redis,
                                                   tmp_path: Path) -> None:
    secret = tmp_path / "pw"
    secret.write_text(PASSWORD + "\nsecond line ignored\n")
    done = ei_auth(redis_url, "user", "add", "alice", "--role", "operator",
                   "--password-file", str(secret))
    assert done.returncode == 0, done.stderr
    assert "user alice added with role operator" in done.stdout
    again = ei_auth(redis_url, "user", "add", "alice", "--role", "admin")  # no prompt first
    assert again.returncode == 1 and "exists already" in again.stderr
    store = AuthStore(redis_client)
    user = store.authenticate_password("alice", PASSWORD)
    assert user is not None and user.role is Role.OPERATOR
    assert PASSWORD not in done.stdout + done.stderr


def test_a_password_from_stdin_and_removal(redis_url: str, redis_client: redis.Redis) -> None:
    done = ei_auth(redis_url, "user", "add", "bob", "--role", "viewer", "--password-file", "-",
                   stdin=PASSWORD + "\r\n")
    assert done.returncode == 0, done.stderr
    store = AuthStore(redis_client)
    assert store.authenticate_password("bob", PASSWORD) is not None
    removed = ei_auth(redis_url, "user", "remove", "bob", "--redis-url", redis_url)
    assert removed.returncode == 0, removed.stderr
    assert store.authenticate_password("bob", PASSWORD) is None
    again = ei_auth(redis_url, "user", "remove", "bob")
    assert again.returncode == 1 and "no user named 'bob'" in again.stderr


def test_without_a_terminal_or_with_a_short_password_nothing_is_added(
        redis_url: str, redis_client: redis.Redis, tmp_path: Path) -> None:
    done = ei_auth(redis_url, "user", "add", "carol", "--role", "admin")
    assert done.returncode == 1 and "--password-file" in done.stderr
    short = ei_auth(redis_url, "user", "add", "carol", "--role", "admin", "--password-file",
                    "-", stdin="tooshort\n")
    assert short.returncode == 1 and "at least 12" in short.stderr
    assert "tooshort" not in short.stderr
    missing = ei_auth(redis_url, "user", "add", "carol", "--role", "admin", "--password-file",
                      str(tmp_path / "nope"))
    assert missing.returncode == 1 and "cannot read the password file" in missing.stderr
    assert redis_client.dbsize() == 0


@pytest.mark.parametrize("args", [
    ["--password", PASSWORD],
    [f"--password={PASSWORD}"],
    ["--pass", PASSWORD],  # no abbreviation of --password-file either
    ["--passw", PASSWORD],
    [PASSWORD.replace(" ", "-")],  # a stray positional argument
])
def test_a_password_on_the_command_line_is_impossible(
        redis_url: str, redis_client: redis.Redis, args: list[str]) -> None:
    done = ei_auth(redis_url, "user", "add", "dave", "--role", "admin", *args,
                   stdin=PASSWORD + "\n")
    assert done.returncode == 2, done.stdout + done.stderr
    assert "correct" not in done.stdout + done.stderr  # the value is never echoed
    assert "never taken from the command line" in done.stderr or "not shown" in done.stderr
    assert redis_client.dbsize() == 0


def test_an_unknown_role_is_refused_naming_the_allowed_ones(
        redis_url: str, redis_client: redis.Redis) -> None:
    for args in (["user", "add", "erin", "--role", "root", "--password-file", "-"],
                 ["token", "create", "--role", "superuser"]):
        done = ei_auth(redis_url, *args, stdin=PASSWORD + "\n")
        assert done.returncode == 1, done.stdout
        assert "choose one of viewer, operator, admin" in done.stderr
        assert done.stdout == ""
    assert redis_client.dbsize() == 0


def test_a_token_is_printed_alone_on_the_last_line_and_works_until_revoked(
        redis_url: str, redis_client: redis.Redis) -> None:
    done = ei_auth(redis_url, "token", "create", "--role", "operator", "--name", "ci")
    assert done.returncode == 0, done.stderr
    token = done.stdout.splitlines()[-1]
    assert done.stdout == token + "\n" and token.startswith("ei_")
    assert "token ci created with role operator" in done.stderr and token not in done.stderr
    store = AuthStore(redis_client)
    assert store.authenticate_token(token) == Principal("token", "ci", Role.OPERATOR)
    revoked = ei_auth(redis_url, "token", "revoke", "ci")
    assert revoked.returncode == 0, revoked.stderr
    assert store.authenticate_token(token) is None
    assert not redis_client.exists(keys.auth_token(token_digest(token)))


def test_list_shows_users_and_tokens_and_no_secret(redis_url: str, redis_client: redis.Redis
                                                   ) -> None:
    ei_auth(redis_url, "user", "add", "alice", "--role", "admin", "--password-file", "-",
            stdin=PASSWORD + "\n")
    made = ei_auth(redis_url, "token", "create", "--role", "viewer")
    token = made.stdout.splitlines()[-1]
    AuthStore(redis_client).authenticate_token(token)
    done = ei_auth(redis_url, "list")
    assert done.returncode == 0, done.stderr
    rows = {line.split()[0]: line.split() for line in done.stdout.splitlines() if line.strip()}
    assert rows["alice"][1] == "admin"
    generated = [name for name in rows if name.startswith("token-")]
    assert len(generated) == 1 and rows[generated[0]][1] == "viewer"
    assert "never" not in rows[generated[0]]  # last used: just now
    stored_hash = redis_client.hget(keys.auth_user("alice"), "hash").decode()
    for secret in (PASSWORD, token, token[3:], token_digest(token), stored_hash, "$argon2"):
        assert secret not in done.stdout + done.stderr


def run_on_a_terminal(redis_url: str, args: list[str], answers: list[str]) -> tuple[int, str]:
    """``ei auth ARGS`` with a pseudo-terminal as its controlling terminal (what getpass
    reads), typing ``answers`` at each prompt; its exit status and everything it wrote."""
    pid, fd = pty.fork()
    if pid == 0:  # the child: becomes ei auth
        os.chdir(REPO)
        os.execve(sys.executable, [sys.executable, "-m", "elastic_inference.cli", "auth", *args],
                  environment(EI_REDIS_URL=redis_url))
    seen = b""
    deadline = time.monotonic() + 60
    answered = 0
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.2)
        if ready:
            try:
                chunk = os.read(fd, 1024)
            except OSError:  # the child closed the terminal
                break
            if not chunk:
                break
            seen += chunk
        # A new prompt, and echo off: getpass flushed pending input already, so the answer
        # typed now is the one it reads.
        echo_off = not termios.tcgetattr(fd)[3] & termios.ECHO
        if (answered < len(answers) and seen.rstrip().endswith(b":") and echo_off
                and seen.count(b":") > answered):
            os.write(fd, (answers[answered] + "\n").encode())
            answered += 1
    else:
        os.kill(pid, signal.SIGKILL)
    _, status = os.waitpid(pid, 0)
    os.close(fd)
    return os.waitstatus_to_exitcode(status), seen.decode(errors="replace")


def test_the_prompt_asks_twice_and_shows_nothing(redis_url: str, redis_client: redis.Redis
                                                 ) -> None:
    code, seen = run_on_a_terminal(redis_url, ["user", "add", "fay", "--role", "viewer"],
                                   [PASSWORD, PASSWORD])
    assert code == 0, seen
    assert seen.count("Password") == 2 and PASSWORD not in seen  # no echo on the terminal
    assert AuthStore(redis_client).authenticate_password("fay", PASSWORD) is not None
    code, seen = run_on_a_terminal(redis_url, ["user", "add", "gil", "--role", "viewer"],
                                   [PASSWORD, PASSWORD + "x"])
    assert code == 1 and "the two passwords differ" in seen
    assert not redis_client.exists(keys.auth_user("gil"))
