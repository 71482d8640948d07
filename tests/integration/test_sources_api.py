"""``/api/sources`` through the real gateway on a real Redis (doc/sources.md): the five
operations, roles, 409 and 400s that store nothing, credentials masked in every answer and log
line, the PUT that keeps the stored URL, and the state read from the stream registry."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from elastic_inference.core import keys
from elastic_inference.core.auth import Role
from elastic_inference.core.authstore import AuthStore
from elastic_inference.core.netguard import SourcePolicy
from elastic_inference.core.registry import StreamRegistry
from elastic_inference.core.sessions import CSRF_HEADER, SESSION_COOKIE
from elastic_inference.core.sources import MAX_SOURCES, SourceConfig, SourceStore
from tests.credentials import bearer
from tests.gateway_app import GatewayThread
from tests.processes import http

pytestmark = pytest.mark.integration

JSON = {"Content-Type": "application/json"}
#: Allowed by the gateway's policy below (loopback, listed by itself); rtsp is checked by host
#: only, so nothing is contacted.
SECRET_URL = "rtsp://admin:s3cret-pw@127.0.0.1:8554/live?token=t0ken-value&channel=1"
SECRETS = ("s3cret-pw", "t0ken-value")
CAMERA = {"id": "gate-1", "source": SECRET_URL, "types": ["people", "car"], "fps": 10,
          "max_width": 640}
FILE = {"id": "lobby", "source": "clip.avi", "types": ["face"]}


@pytest.fixture
def gateway(redis_url: str, tmp_path: Path) -> Iterator[GatewayThread]:
    media = tmp_path / "media"
    media.mkdir()
    (media / "clip.avi").write_bytes(b"not really a video")
    (tmp_path / "outside.avi").write_bytes(b"not really a video")
    gw = GatewayThread(redis_url, media_dir=media,
                       source_policy=SourcePolicy.parse(["127.0.0.1"]))
    yield gw
    gw.stop()


def call(gw: GatewayThread, method: str, path: str = "", body: Any = None,
         headers: dict[str, str] | None = None) -> tuple[int, Any]:
    raw = None if body is None else body if isinstance(body, bytes) else json.dumps(body).encode()
    code, _, answer = http(f"{gw.url}/api/sources{path}", method, raw,
                           {**JSON, **(gw.auth if headers is None else headers)})
    return code, json.loads(answer) if answer else None


def stored(client: redis.Redis) -> dict[bytes, bytes]:
    return client.hgetall(keys.sources())


def test_create_list_get_replace_delete(gateway: GatewayThread,
                                        redis_client: redis.Redis) -> None:
    assert call(gateway, "GET") == (200, {"sources": []})
    code, created = call(gateway, "POST", body=FILE)
    assert code == 201, created
    assert created == {"id": "lobby", "source": "clip.avi", "kind": "file", "types": ["face"],
                       "fps": 0.0, "max_width": 1280, "enabled": True,
                       "updated": created["updated"], "state": {"state": "pending"}}
    assert created["updated"] > 0
    assert call(gateway, "POST", body={**CAMERA, "source": "0"})[0] == 201
    code, listed = call(gateway, "GET")
    assert code == 200 and [s["id"] for s in listed["sources"]] == ["gate-1", "lobby"]
    assert listed["sources"][1] == created
    assert call(gateway, "GET", "/lobby") == (200, created)

    code, replaced = call(gateway, "PUT", "/lobby", {"source": "clip.avi", "types": ["people"],
                                                     "enabled": False})
    assert code == 200, replaced
    assert replaced["types"] == ["people"] and replaced["state"] == {"state": "disabled"}
    assert SourceStore(redis_client).get("lobby") == SourceConfig(
        "lobby", "clip.avi", ("people",), enabled=False)
    code, new = call(gateway, "PUT", "/cam-2", {"id": "cam-2", "source": "/dev/video1",
                                                "types": ["car"]})
    assert code == 201 and new["kind"] == "webcam", new

    code, _ = call(gateway, "DELETE", "/lobby")
    assert code == 204
    assert call(gateway, "GET", "/lobby")[0] == 404
    assert call(gateway, "DELETE", "/lobby")[0] == 404
    assert sorted(stored(redis_client)) == [b"cam-2", b"gate-1"]


def test_viewers_read_operators_write_anonymous_gets_401(gateway: GatewayThread,
                                                         redis_client: redis.Redis) -> None:
    viewer, operator = bearer(redis_client, Role.VIEWER), bearer(redis_client, Role.OPERATOR)
    assert call(gateway, "POST", body=FILE, headers=operator)[0] == 201
    assert call(gateway, "GET", headers=viewer)[0] == 200
    assert call(gateway, "GET", "/lobby", headers=viewer)[0] == 200
    for method, path, body in (("POST", "", {**FILE, "id": "other"}), ("PUT", "/lobby", FILE),
                               ("DELETE", "/lobby", None)):
        code, answer = call(gateway, method, path, body, viewer)
        assert code == 403 and "operator" in answer["error"], (method, answer)
        assert call(gateway, method, path, body, {})[0] == 401, method
    for path in ("", "/lobby"):
        assert call(gateway, "GET", path, headers={})[0] == 401
    assert list(stored(redis_client)) == [b"lobby"]
    assert SourceStore(redis_client).get("lobby") == SourceConfig("lobby", "clip.avi", ("face",))


def test_a_cookie_session_writes_only_with_its_csrf_token(gateway: GatewayThread,
                                                          redis_client: redis.Redis) -> None:
    AuthStore(redis_client).add_user("op", Role.OPERATOR, "correct horse battery staple")
    sessions = gateway.ctx.gatekeeper.sessions
    assert sessions is not None
    new = sessions.create("op", Role.OPERATOR, 600)
    cookie = {"Cookie": f"{SESSION_COOKIE}={new.cookie}"}
    code, answer = call(gateway, "POST", body=FILE, headers=cookie)
    assert code == 403 and CSRF_HEADER in answer["error"]
    assert not stored(redis_client)
    assert call(gateway, "POST", body=FILE, headers={**cookie, CSRF_HEADER: new.csrf})[0] == 201


def test_an_existing_id_is_409_and_keeps_the_stored_source(gateway: GatewayThread,
                                                           redis_client: redis.Redis) -> None:
    assert call(gateway, "POST", body=FILE)[0] == 201
    before = stored(redis_client)
    code, answer = call(gateway, "POST", body={**FILE, "source": "3"})
    assert code == 409 and "exists" in answer["error"] and "PUT" in answer["error"]
    assert stored(redis_client) == before


def test_the_registry_takes_at_most_max_sources(gateway: GatewayThread,
                                                redis_client: redis.Redis) -> None:
    pipe = redis_client.pipeline(transaction=False)
    for n in range(MAX_SOURCES):
        pipe.hset(keys.sources(), f"s{n}", SourceConfig(f"s{n}", "0", ("people",)).encode())
    pipe.execute()
    for method, path in (("POST", ""), ("PUT", "/lobby")):
        code, answer = call(gateway, method, path, FILE)
        assert code == 409 and str(MAX_SOURCES) in answer["error"], (method, answer)
    assert redis_client.hlen(keys.sources()) == MAX_SOURCES
    code, answer = call(gateway, "PUT", "/s0", {"source": "clip.avi", "types": ["car"]})
    assert code == 200 and answer["source"] == "clip.avi"  # replacing one is still allowed
    assert len(call(gateway, "GET")[1]["sources"]) == MAX_SOURCES


@pytest.mark.parametrize("method, path, body, problem", [
    ("POST", "", {**FILE, "url": "x"}, 'unknown field(s) "url"'),
    ("POST", "", {**FILE, "id": "bad id"}, "invalid stream id"),
    ("PUT", "/bad%20id", FILE, "invalid stream id"),
    ("PUT", "/lobby", {**FILE, "id": "other"}, "differs from the path"),
    ("POST", "", {**CAMERA, "source": "rtsp://admin:s3cret-pw@10.9.9.9/live"},
     "host '10.9.9.9' is not in EI_SOURCE_ALLOW"),
    ("POST", "", {**FILE, "source": "../outside.avi"}, "outside the media directory"),
    ("POST", "", {**FILE, "source": "missing.avi"}, "not a file in the media directory"),
    ("POST", "", {**FILE, "types": ["unicorns"]}, "unknown inference type(s) 'unicorns'"),
    ("POST", "", {**FILE, "fps": 61}, "fps must be in 0..60"),
    ("PUT", "/lobby", {**FILE, "max_width": 10}, "max_width must be 0"),
    ("POST", "", b"{oops", "JSON"),
])
def test_a_bad_request_is_400_naming_the_problem_and_stores_nothing(
        gateway: GatewayThread, redis_client: redis.Redis, method: str, path: str, body: Any,
        problem: str) -> None:
    code, answer = call(gateway, method, path, body)
    assert code == 400, answer
    assert problem in answer["error"], answer
    assert "s3cret" not in answer["error"]
    assert not stored(redis_client)


def test_credentials_are_masked_in_answers_and_logs_and_kept_by_a_masked_put(
        gateway: GatewayThread, redis_client: redis.Redis,
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    answers = [call(gateway, "POST", body=CAMERA)]
    shown = answers[0][1]["source"]
    assert answers[0][0] == 201 and shown.startswith("rtsp://admin:***@127.0.0.1:8554/live?")
    answers += [call(gateway, "GET"), call(gateway, "GET", "/gate-1")]
    # The dashboard saves what it was shown, with another setting: the password stays.
    answers.append(call(gateway, "PUT", "/gate-1", {**CAMERA, "source": shown, "fps": 5}))
    assert answers[-1][0] == 200 and answers[-1][1]["fps"] == 5
    assert SourceStore(redis_client).get("gate-1") == SourceConfig(
        "gate-1", SECRET_URL, ("people", "car"), fps=5, max_width=640)
    answers.append(call(gateway, "GET", "/gate-1"))
    # A refused change is a 400 that does not show the credentials either.
    refused = "rtsp://admin:s3cret-pw@10.9.9.9/x?token=t0ken-value"
    answers.append(call(gateway, "PUT", "/gate-1", {**CAMERA, "source": refused}))
    assert answers[-1][0] == 400
    # A new URL replaces the stored one.
    answers.append(call(gateway, "PUT", "/gate-1",
                        {**CAMERA, "source": "rtsp://viewer:other-pw@127.0.0.1/sub"}))
    again = SourceStore(redis_client).get("gate-1")
    assert again is not None and again.source == "rtsp://viewer:other-pw@127.0.0.1/sub"
    answers.append(call(gateway, "DELETE", "/gate-1"))
    text = json.dumps(answers)
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "source gate-1 created: rtsp://admin:***@127.0.0.1:8554" in logged
    for secret in (*SECRETS, "other-pw"):
        assert secret not in text and secret not in logged, secret


def test_state_pending_disabled_or_what_the_reader_reports(
        gateway: GatewayThread, redis_client: redis.Redis) -> None:
    for body in ({**CAMERA, "source": "0"}, {**FILE, "enabled": False},
                 {**FILE, "id": "idle"}):
        assert call(gateway, "POST", body=body)[0] == 201
    registry = StreamRegistry(redis_client)
    registry.beat("gate-1", {"types": ["people", "car"], "source_kind": "webcam",
                             "source": "0", "state": "live", "replica": "pool-7f3a",
                             "reconnects": 3, "fps": 10.0, "sent_fps": 9.8, "frames": 500})
    registry.beat("lobby", {"state": "live", "fps": 5.0, "sent_fps": 5.0})
    states = {s["id"]: s["state"] for s in call(gateway, "GET")[1]["sources"]}
    assert states == {"gate-1": {"state": "live", "replica": "pool-7f3a", "reconnects": 3,
                                 "fps": 9.8},
                      "idle": {"state": "pending"}, "lobby": {"state": "disabled"}}
    assert call(gateway, "GET", "/gate-1")[1]["state"] == states["gate-1"]
    registry.beat("gate-1", {"state": "retrying", "replica": "pool-7f3a", "reconnects": 4,
                             "fps": 10.0, "sent_fps": 0.0})
    assert call(gateway, "GET", "/gate-1")[1]["state"] == {
        "state": "retrying", "replica": "pool-7f3a", "reconnects": 4, "fps": 0.0}
    registry.remove("gate-1")
    assert call(gateway, "GET", "/gate-1")[1]["state"] == {"state": "pending"}


def test_a_damaged_stored_source_is_500_on_read_and_mended_by_a_put(
        gateway: GatewayThread, redis_client: redis.Redis) -> None:
    redis_client.hset(keys.sources(), "lobby", b"{not json")
    code, answer = call(gateway, "GET", "/lobby")
    assert code == 500 and "damaged" in answer["error"]
    assert call(gateway, "GET") == (200, {"sources": []})
    code, answer = call(gateway, "PUT", "/lobby", FILE)
    assert code == 201, answer
    assert call(gateway, "GET", "/lobby")[0] == 200


def test_body_size_and_media_type_are_checked(gateway: GatewayThread,
                                              redis_client: redis.Redis) -> None:
    padded = json.dumps({**FILE, "source": "clip.avi" + " " * 17000}).encode()
    for method, path in (("POST", ""), ("PUT", "/lobby")):
        code, answer = call(gateway, method, path, padded)
        assert code == 413 and "16384" in answer["error"], (method, answer)
        code, _, raw = http(f"{gateway.url}/api/sources{path}", method,
                            json.dumps(FILE).encode(),
                            {"Content-Type": "text/plain", **gateway.auth})
        assert code == 415 and b"application/json" in raw, method
    assert not stored(redis_client)
