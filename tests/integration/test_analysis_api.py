"""Analysis jobs through the gateway's API, end to end: real ``ei gateway``, ``ei analysis`` and
``ei infer`` processes on a real redis-server. A job keeps every N-th frame of a video and
loses none, even when a worker is killed with SIGKILL halfway; every bad request is refused
with a message. (doc/analysis.md describes the flow, doc/api.md the endpoints.)
"""

from __future__ import annotations

import json
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import redis

from elastic_inference.core import keys
from elastic_inference.core.jobs import JobStore
from elastic_inference.core.registry import WorkerRegistry
from tests.analysis_api import JSON, Api, gateway_api, start_runner, start_worker
from tests.jpegs import decode
from tests.processes import wait_for

pytestmark = pytest.mark.integration

VTEST_FRAMES = 795
EVERY_FIFTH = list(range(0, VTEST_FRAMES, 5))  # 0, 5, ..., 790: 159 frames


@pytest.fixture
def api(redis_url: str, sample_dir: Path) -> Iterator[Api]:
    yield from gateway_api(redis_url, sample_dir)


# --------------------------------------------------------------------------- a whole video


def test_every_fifth_frame_of_vtest_through_the_api(
        api: Api, redis_url: str, redis_client: redis.Redis, model_dir: Path,
        sample_dir: Path) -> None:
    services = [start_runner(redis_url, sample_dir), start_worker(redis_url, model_dir),
                start_worker(redis_url, model_dir, "face")]
    try:
        code, head, raw = api.call("POST", "/api/analysis", json.dumps(
            {"source": "vtest.avi", "types": ["people", "face"], "frame_step": 5,
             "name": "lobby"}).encode(), JSON)
        assert code == 201, raw
        created = json.loads(raw)
        job_id = created["id"]
        assert head["Location"] == f"/api/analysis/{job_id}"
        assert keys.JOB_ID_RE.match(job_id)
        assert {k: created[k] for k in ("name", "source", "types", "frame_step")} == {
            "name": "lobby", "source": "vtest.avi", "types": ["people", "face"],
            "frame_step": 5}
        assert created["status"] in ("queued", "extracting")

        job = wait_for(lambda: api.done(job_id), 120, "the job to finish")
        assert job["frames_total"] == job["frames_done"] == len(EVERY_FIFTH) == 159
        assert job["progress"] == {t: {"done": 159, "total": 159} for t in ("people", "face")}
        code, listed = api.get("/api/analysis")
        # The listing leaves out what only one job's GET answers: its counts and events.
        assert code == 200 and listed["jobs"] == [
            {k: v for k, v in job.items() if k not in ("counts", "events", "events_total")}]

        # Exactly one result per type for frames 0, 5, ..., 790, in frame order, read 64 at
        # a time: pages of 64, 64 and 31.
        frames, pages = api.all_results(job_id, 64)
        assert pages == 3
        assert [f["frame"] for f in frames] == EVERY_FIFTH
        for row in frames:
            assert sorted(row["results"]) == ["face", "people"], row["frame"]
            for infer_type, result in row["results"].items():
                assert (result["stream"], result["type"], result["seq"]) == (
                    job_id, infer_type, row["frame"])
        assert sum(bool(r["results"]["people"]["detections"]) for r in frames) > 100
        code, beyond = api.get(f"/api/analysis/{job_id}/results?offset=159")
        assert code == 200 and beyond["frames"] == [] and beyond["total"] == 159

        # Frame 100 with its boxes drawn, and its results.
        code, frame_results = api.get(f"/api/analysis/{job_id}/frames/100/results")
        assert code == 200
        assert (frame_results["id"], frame_results["frame"]) == (job_id, 100)
        people = frame_results["results"]["people"]
        assert people == frames[20]["results"]["people"]
        persons = [d for d in people["detections"] if d["label"] == "person"]
        assert persons, people
        code, head, jpeg = api.call("GET", f"/api/analysis/{job_id}/frames/100.jpg")
        assert code == 200 and head["Content-Type"] == "image/jpeg"
        assert head["X-EI-Frame"] == "100"
        drawn = decode(jpeg).astype(int)
        stored = JobStore(redis_client).frame(job_id, 100)
        assert stored is not None
        plain = decode(stored).astype(int)
        assert drawn.shape == plain.shape
        h, w = plain.shape[:2]
        for det in persons:  # each box's top-left corner is drawn over
            x, y = round(det["box"][0] * (w - 1)), round(det["box"][1] * (h - 1))
            window = np.abs(drawn - plain)[max(0, y - 2):y + 3, max(0, x - 2):x + 3]
            assert window.max() > 60, det
        for missing in ("3", "795"):  # not a kept frame; past the end
            code, body = api.get(f"/api/analysis/{job_id}/frames/{missing}.jpg")
            assert code == 404 and "is not stored" in body["error"]
            code, body = api.get(f"/api/analysis/{job_id}/frames/{missing}/results")
            assert code == 404 and "is not stored" in body["error"]
        assert all(s.alive() for s in services), [s.output()[-2000:] for s in services]

        # Deleting removes the job, its frames and results.
        code, _, raw = api.call("DELETE", f"/api/analysis/{job_id}")
        assert code == 204 and raw == b""
        assert redis_client.keys(f"{keys.job(job_id)}*") == []
        for path in ("", "/results", "/frames/100.jpg", "/frames/100/results"):
            code, body = api.get(f"/api/analysis/{job_id}{path}")
            assert code == 404 and job_id in body["error"], path
        assert api.json("DELETE", f"/api/analysis/{job_id}")[0] == 404
        assert api.get("/api/analysis") == (200, {"jobs": []})
    finally:
        for s in services:
            s.stop()


def test_a_worker_killed_halfway_loses_no_frame(
        api: Api, redis_url: str, redis_client: redis.Redis, model_dir: Path,
        sample_dir: Path) -> None:
    runner = start_runner(redis_url, sample_dir)
    doomed = start_worker(redis_url, model_dir)
    survivor = start_worker(redis_url, model_dir)
    try:
        wait_for(lambda: "compiled" in doomed.output() and "compiled" in survivor.output(), 60,
                 "both workers to load the model")
        job_id = api.submit({"source": "vtest.avi", "types": ["people"], "frame_step": 5})

        def halfway() -> bool:
            code, job = api.get(f"/api/analysis/{job_id}")
            return code == 200 and job["progress"]["people"]["done"] >= 50

        wait_for(halfway, 90, "half of the job", interval=0.05)
        # Kill while frames are out on lease, so some die with the worker. Awaited, not
        # sampled once: on a CPU that infers as fast as frames are extracted, the workers
        # can be between frames for a moment.
        wait_for(lambda: redis_client.zcard(keys.job_queue_leases("people")) >= 1, 30,
                 "frames out on lease", interval=0.005)
        doomed.stop(sig=signal.SIGKILL)  # holding leased frames, no chance to clean up
        job = wait_for(lambda: api.done(job_id), 120, "the job to finish without the worker")
        assert job["frames_total"] == job["frames_done"] == 159
        frames, _ = api.all_results(job_id, 1000)
        assert [f["frame"] for f in frames] == EVERY_FIFTH
        assert all(f["results"]["people"]["seq"] == f["frame"] for f in frames)
        assert survivor.alive() and runner.alive()
    finally:
        for s in (runner, doomed, survivor):
            s.stop()


# --------------------------------------------------------------------------- bad requests


GOOD = {"source": "vtest.avi", "types": ["people"]}

#: (body, a fragment of the error message): each answered 400.
BAD_JOBS: list[tuple[Any, str]] = [
    (b'{"source": "vtest.avi", "types": ["people"]', "not valid JSON"),
    (b"\xff\xfe\x00", "not valid JSON"),
    (b"[" * 5000 + b"]" * 5000, "not valid JSON"),
    (b"", "not valid JSON"),
    ([GOOD], "must be a JSON object"),
    ("vtest.avi", "must be a JSON object"),
    ({**GOOD, "fps": 5}, "unknown field(s) \"fps\""),
    ({"types": ["people"]}, "source is required"),
    ({**GOOD, "source": ""}, "source is required"),
    ({**GOOD, "source": 7}, "source must be a string"),
    ({**GOOD, "source": "../README.md"}, "outside the media directory"),
    ({**GOOD, "source": "/etc/hostname"}, "outside the media directory"),
    ({**GOOD, "source": "nope.avi"}, "is not a file in the media directory"),
    ({**GOOD, "source": "."}, "is not a file in the media directory"),
    ({**GOOD, "source": "vtest.avi\n"}, "without control characters"),
    ({**GOOD, "source": "file:///etc/passwd"}, "source URL must be rtsp"),
    ({**GOOD, "source": "ftp://example.com/v.avi"}, "source URL must be rtsp"),
    ({**GOOD, "source": "http:///v.avi"}, "with a host"),
    ({"source": "vtest.avi"}, "types must be a non-empty list"),
    ({**GOOD, "types": "people"}, "types must be a non-empty list"),
    ({**GOOD, "types": []}, "types must be a non-empty list"),
    ({**GOOD, "types": ["people", 1]}, "types must be a non-empty list"),
    ({**GOOD, "types": ["plates"]}, "unknown inference type(s) 'plates'"),
    ({**GOOD, "types": ["People"]}, "invalid inference type 'People'"),
    ({**GOOD, "types": ["people", "people"]}, "inference types repeat"),
    ({**GOOD, "frame_step": 0}, "frame_step must be an integer in 1..10000"),
    ({**GOOD, "frame_step": -5}, "frame_step must be an integer in 1..10000"),
    ({**GOOD, "frame_step": 10001}, "frame_step must be an integer in 1..10000"),
    ({**GOOD, "frame_step": True}, "frame_step must be an integer >= 1"),
    ({**GOOD, "frame_step": 5.0}, "frame_step must be an integer >= 1"),
    ({**GOOD, "frame_step": "5"}, "frame_step must be an integer >= 1"),
    ({**GOOD, "frame_step": None}, "frame_step must be an integer >= 1"),
    ({**GOOD, "name": "x" * 121}, "name must be at most 120"),
    ({**GOOD, "name": "a\tb"}, "name must be at most 120 printable"),
    ({**GOOD, "name": ["lobby"]}, "name must be a string"),
]


def test_bad_jobs_are_refused_with_a_message(api: Api, redis_client: redis.Redis) -> None:
    for job, message in BAD_JOBS:
        body = job if isinstance(job, bytes) else json.dumps(job).encode()
        code, answer = api.json("POST", "/api/analysis", body, JSON)
        assert code == 400 and message in answer["error"], (job, answer)
    assert redis_client.zcard(keys.jobs()) == 0  # nothing was recorded
    # A type is known once it has a worker, even one that is not built in.
    WorkerRegistry(redis_client, "plates").beat("plates-1", {"type": "plates"})
    accepted = api.submit({**GOOD, "types": ["plates", "people"], "frame_step": 10000,
                           "name": "x" * 120})
    # Not JSON, too large (announced or chunked): refused before the body is read.
    code, answer = api.json("POST", "/api/analysis", json.dumps(GOOD).encode(),
                            {"Content-Type": "text/plain"})
    assert code == 415 and "application/json" in answer["error"]
    padded = json.dumps({**GOOD, "name": " " * 17000}).encode()
    code, answer = api.json("POST", "/api/analysis", padded, JSON)
    assert code == 413 and "16384" in answer["error"]
    code, answer = api.json("POST", "/api/analysis", iter([padded[:9000], padded[9000:]]),
                            JSON)
    assert code == 413 and "16384" in answer["error"]
    assert [j["id"] for j in api.get("/api/analysis")[1]["jobs"]] == [accepted]


def test_ids_frames_and_parameters_are_checked(api: Api) -> None:
    first = api.submit({**GOOD, "frame_step": 5})
    second = api.submit(GOOD)
    # Newest first; limit 1..100.
    assert [j["id"] for j in api.get("/api/analysis")[1]["jobs"]] == [second, first]
    assert [j["id"] for j in api.get("/api/analysis?limit=1")[1]["jobs"]] == [second]
    for query, message in (("limit=0", "invalid limit 0"), ("limit=101", "invalid limit 101"),
                           ("limit=x", "invalid limit 'x'"), ("offset=-1", "invalid offset")):
        code, body = api.get(f"/api/analysis?{query}")
        assert code == 400 and message in body["error"], query
    # Queued, nothing read yet: no frame is stored, no result exists.
    code, body = api.get(f"/api/analysis/{first}")
    assert code == 200 and body["status"] == "queued" and body["frames_total"] is None
    assert api.get(f"/api/analysis/{first}/results") == (200, {
        "id": first, "total": 0, "offset": 0, "limit": 100, "frames": []})
    code, body = api.get(f"/api/analysis/{first}/frames/0.jpg")
    assert code == 404 and "frames 0, 5, 10, ..." in body["error"]
    for query, message in (("offset=-1", "invalid offset -1"),
                           ("limit=1001", "invalid limit 1001"), ("limit=0", "invalid limit 0")):
        code, body = api.get(f"/api/analysis/{first}/results?{query}")
        assert code == 400 and message in body["error"], query
    for frame in ("x", "-1", "1.5", "01", "1e3", "%20"):
        for path in (f"frames/{frame}.jpg", f"frames/{frame}/results"):
            code, body = api.get(f"/api/analysis/{first}/{path}")
            assert code == 400 and "invalid frame number" in body["error"], path
    # Ids: malformed is 400, well-formed but unknown 404, on every route and method.
    unknown = "j0123456789ab"
    for path in ("", "/results", "/frames/0.jpg", "/frames/0/results"):
        for job_id, status, message in (("nope", 400, "invalid job id"),
                                        ("J0123456789AB", 400, "invalid job id"),
                                        (unknown, 404, "unknown analysis job")):
            code, body = api.get(f"/api/analysis/{job_id}{path}")
            assert code == status and message in body["error"], (job_id, path)
    assert api.json("DELETE", "/api/analysis/nope")[0] == 400
    assert api.json("DELETE", f"/api/analysis/{unknown}")[0] == 404
    assert api.json("PUT", f"/api/analysis/{first}", b"{}", JSON)[0] == 405
    # DELETE, then the job is gone everywhere.
    assert api.call("DELETE", f"/api/analysis/{first}")[0] == 204
    assert api.get(f"/api/analysis/{first}")[0] == 404
    assert api.json("DELETE", f"/api/analysis/{first}")[0] == 404
    assert [j["id"] for j in api.get("/api/analysis")[1]["jobs"]] == [second]
