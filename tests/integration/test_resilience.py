"""A Redis restart while every service runs: they log, reconnect with backoff and go on."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
import websockets

from elastic_inference.core import keys
from elastic_inference.core.auth import Role
from tests.credentials import SECRET_ENV, bearer
from tests.processes import Service, http, wait_for
from tests.redis_server import RedisServer, free_port

pytestmark = pytest.mark.integration


@pytest.fixture
def own_redis() -> Iterator[RedisServer]:
    server = RedisServer(password="s3cret-pass").start()
    yield server
    server.stop()


async def one_ws_message(url: str, timeout: float, auth: dict[str, str]) -> bytes:
    async with websockets.connect(url, open_timeout=5, additional_headers=auth) as ws:
        while True:
            msg = await asyncio.wait_for(ws.recv(), timeout)
            if isinstance(msg, bytes):
                return msg


def test_services_survive_a_redis_restart(own_redis: RedisServer, model_dir: Path,
                                          sample_dir: Path) -> None:
    env = {"EI_REDIS_URL": own_redis.url, **SECRET_ENV}
    gw_port, ws_port = free_port(), free_port()
    services = [
        Service(["stream", "--source", str(sample_dir / "Megamind.avi"), "--stream-id", "mm",
                 "--types", "face", "--fps", "10"], env),
        Service(["infer", "--type", "face", "--model-dir", str(model_dir)], env),
        Service(["websocket", "--host", "127.0.0.1", "--port", str(ws_port)], env),
        Service(["gateway", "--host", "127.0.0.1", "--port", str(gw_port)], env),
    ]
    client = redis.Redis.from_url(own_redis.url)
    api = f"http://127.0.0.1:{gw_port}/api/streams"
    auth = bearer(client, Role.VIEWER)

    def listed() -> list[str]:
        status, _, body = http(api, headers=auth)
        return [s["id"] for s in json.loads(body)["streams"]] if status == 200 else []

    ws_url = f"ws://127.0.0.1:{ws_port}/ws"
    try:
        wait_for(lambda: client.xlen(keys.out("mm")) > 0, 60, "results before the restart")
        wait_for(listed, 20, "the gateway to list the stream")

        own_redis.restart(down_for=2.0)  # no persistence: every key is gone afterwards

        wait_for(lambda: client.xlen(keys.out("mm")) > 0, 60, "results after the restart")
        auth = bearer(client, Role.VIEWER)  # the token went with every other key
        wait_for(lambda: listed() == ["mm"], 30,
                 "the stream to re-register and the gateway to list it")
        message = asyncio.run(one_ws_message(ws_url, 20, auth))
        assert b'"stream":' in message or b'"stream": ' in message
        for s in services:
            assert s.alive(), f"{s.args[0]} exited:\n{s.output()[-3000:]}"
    finally:
        codes = {s.args[0]: s.stop() for s in services}
    for s in services:
        out = s.output()
        assert "s3cret-pass" not in out, f"{s.args[0]} logged the Redis password"
    logs = "\n".join(s.output() for s in services)
    assert "retrying with backoff" in logs and "reachable again" in logs
    assert codes == dict.fromkeys(codes, 0), codes
