"""Fixtures shared by every test: a real redis-server per test session and a clean client."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from tests.redis_server import RedisServer

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer().start()
    yield server
    server.stop()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> Iterator[str]:
    """URL of a flushed database on the session's redis-server."""
    client = redis.Redis.from_url(redis_server.url)
    client.flushall()
    client.close()
    yield redis_server.url


@pytest.fixture
def redis_client(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


@pytest.fixture(scope="session")
def model_dir() -> Path:
    """The real models, fetched (once, verified) into the repository's models/ directory."""
    from elastic_inference.engine.fetch import fetch_models

    target = REPO / "models"
    fetch_models(target, target / ".cache")
    return target


@pytest.fixture(scope="session")
def sample_dir() -> Path:
    """Sample videos from tools/download-samples.sh (``make test`` runs it first)."""
    target = REPO / "samples"
    missing = [n for n in ("vtest.avi", "Megamind.avi") if not (target / n).is_file()]
    if missing:
        pytest.fail(f"sample videos {missing} missing: run tools/download-samples.sh")
    return target
