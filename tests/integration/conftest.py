"""Fixtures shared by integration test modules: the in-process gateway and a stream it serves,
the in-process websocket service, a small video clip for ``ei stream``, and a redis-server with
the project's Redis ACL users (core/acl.py)."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest
import redis

from elastic_inference.core import acl
from tests.acl_redis import BINARIES, AclRedis
from tests.gateway_app import GatewayThread, publish_cam1
from tests.redis_server import ROOT_USER, start_with_aclfile
from tests.websocket_service import ServiceThread


@pytest.fixture(scope="module", params=sorted(BINARIES))
def acl_redis(request: pytest.FixtureRequest,
              tmp_path_factory: pytest.TempPathFactory) -> Iterator[AclRedis]:
    passwords = {c.component: secrets.token_urlsafe(24) for c in acl.COMPONENTS}
    root_password = secrets.token_urlsafe(24)
    server = start_with_aclfile(acl.aclfile(passwords), tmp_path_factory.mktemp("acl"),
                                ("ei-ops", passwords["ops"]), root_password,
                                BINARIES[request.param]())
    root = redis.Redis(port=server.port, username=ROOT_USER, password=root_password)
    yield AclRedis(server, passwords, root)
    root.close()
    server.stop()


@pytest.fixture
def fresh(acl_redis: AclRedis) -> AclRedis:
    acl_redis.root.flushall()
    acl_redis.root.acl_log_reset()
    return acl_redis


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 40-frame 320x240 MJPG AVI at 20 fps with a moving disc and square."""
    path = tmp_path_factory.mktemp("video") / "moving shapes.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), 20.0, (320, 240))
    for i in range(40):
        image = np.full((240, 320, 3), 40, np.uint8)
        cv2.circle(image, (20 + i * 7, 120), 25, (0, 200, 0), -1)
        cv2.rectangle(image, (200 - i * 3, 30), (240 - i * 3, 70), (0, 0, 220), -1)
        writer.write(image)
    writer.release()
    assert cv2.VideoCapture(str(path)).get(cv2.CAP_PROP_FRAME_COUNT) == 40
    return path


@pytest.fixture
def gateway(redis_url: str) -> Iterator[GatewayThread]:
    gw = GatewayThread(redis_url)
    yield gw
    gw.stop()


@pytest.fixture
def published(redis_client: redis.Redis) -> bytes:
    """cam1 registered, with people and face results for seq 4 (older) and 5 (newest)."""
    return publish_cam1(redis_client)


@pytest.fixture
def service(redis_url: str) -> Iterator[ServiceThread]:
    svc = ServiceThread(redis_url)
    yield svc
    svc.stop()
