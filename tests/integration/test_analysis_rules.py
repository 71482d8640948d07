"""Analysis jobs with rules, end to end: real ``ei gateway``, ``ei analysis`` and ``ei infer``
(the default people model) on a real redis-server. Bad rules are refused with nothing
created; a job's line counts come back under the rule's name: exact on the synthetic scene
(tests/synthetic_scene.py), within 10 % of a count by eye on vtest.avi
(tests/data/vtest-line-truth.json). doc/analysis.md, "Tracks, counts and events".
"""

from __future__ import annotations

import json
import math
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import redis

from elastic_inference.core import keys
from tests.analysis_api import Api, gateway_api, start_runner, start_worker
from tests.processes import wait_for
from tests.synthetic_scene import crossings, render

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
LINE_TRUTH = REPO / "tests" / "data" / "vtest-line-truth.json"
MIDDLE = {"name": "middle", "kind": "line", "points": [[0.5, 0.0], [0.5, 1.0]],
          "labels": ["person"]}
CARS = {"name": "cars", "kind": "line", "points": [[0.5, 0.0], [0.5, 1.0]], "labels": ["car"]}
LEFT = {"name": "left", "kind": "zone", "points": [[0.0, 0.0], [0.5, 0.0], [0.5, 1.0], [0.0, 1.0]],
        "labels": []}


@pytest.fixture(scope="module")
def media_dir(tmp_path_factory: pytest.TempPathFactory, sample_dir: Path) -> Path:
    """vtest.avi and the synthetic scene written as a 10 fps MJPEG AVI."""
    media = tmp_path_factory.mktemp("media")
    shutil.copy(sample_dir / "vtest.avi", media / "vtest.avi")  # a link out would be refused
    scene = render(sample_dir / "vtest.avi", quality=95)
    writer = cv2.VideoWriter(str(media / "scene.avi"), cv2.VideoWriter.fourcc(*"MJPG"), 10,
                             scene.size)
    for jpeg in scene.jpegs:
        image = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
        assert image is not None
        writer.write(image)
    writer.release()
    return media


@pytest.fixture
def api(redis_url: str, media_dir: Path) -> Iterator[Api]:
    yield from gateway_api(redis_url, media_dir)


def run_job(api: Api, redis_url: str, model_dir: Path, media_dir: Path, job: dict[str, Any],
            timeout: float) -> dict[str, Any]:
    """Submit ``job`` to a real runner and people worker; the job once done."""
    services = [start_runner(redis_url, media_dir), start_worker(redis_url, model_dir)]
    try:
        job_id = api.submit(job)
        done = wait_for(lambda: api.done(job_id), timeout, "the job to finish")
        assert all(s.alive() for s in services), [s.output()[-2000:] for s in services]
        return done
    finally:
        for s in services:
            s.stop()


@pytest.mark.parametrize(("rules", "message"), [
    ([{"name": "gate", "kind": "line", "points": [[0.3, 0.3], [0.3, 0.3]]}],
     "rule 0 (gate): the line has zero length (both points are [0.3, 0.3])"),
    ([MIDDLE, {**LEFT, "points": [[0, 0], [1, 1], [1, 0], [0, 1]]}],
     "rule 1 (left): the zone is not a simple polygon"),
    ([{**MIDDLE, "labels": ["unicorn"]}], 'rule 0 (middle): unknown label(s) "unicorn"'),
    ([{**LEFT, "points": [[i / 40, (i % 2) / 2] for i in range(33)]}],
     "rule 0 (left): too many points (33; at most 32)"),
    ([MIDDLE, MIDDLE], "two rules are named 'middle'"),
    ({"rules": [MIDDLE]}, "rules must be a list of zones and lines"),
])
def test_bad_rules_get_400_and_no_job(api: Api, redis_client: redis.Redis, rules: Any,
                                      message: str) -> None:
    code, body = api.post({"source": "scene.avi", "types": ["people"], "rules": rules})
    assert code == 400 and message in body["error"], body
    assert redis_client.keys(f"{keys.job_keys_pattern()}") == []
    assert redis_client.zcard(keys.jobs()) == 0
    assert redis_client.llen(keys.jobs_pending()) == 0
    assert api.get("/api/analysis") == (200, {"jobs": []})


def test_synthetic_scene_job_counts_under_rule_names(
        api: Api, redis_url: str, model_dir: Path, media_dir: Path) -> None:
    rules = [MIDDLE, CARS, LEFT]
    job = run_job(api, redis_url, model_dir, media_dir,
                  {"source": "scene.avi", "types": ["people"], "rules": rules}, 300)
    assert job["rules"] == rules and job["fps"] == 10.0
    expected = crossings(((0.5, 0.0), (0.5, 1.0)), (768, 576))
    assert expected == {"a->b": 2, "b->a": 2}
    assert job["counts"]["middle"] == {"kind": "line", **expected,
                                       "labels": {"person": expected}}, job["counts"]
    assert job["counts"]["cars"] == {"kind": "line", "a->b": 0, "b->a": 0, "labels": {}}
    left = job["counts"]["left"]
    assert left["kind"] == "zone" and left["enter"] >= 4 and left["dwell"] == 0
    cross = [e for e in job["events"] if e["kind"] == "cross"]
    assert len(cross) == 4 and {e["rule"] for e in cross} == {"middle"}
    assert [e["frame"] for e in job["events"]] == sorted(e["frame"] for e in job["events"])
    for e in cross:  # frame time: frame number / fps
        assert math.isclose(e["ts"], e["frame"] / 10) and e["label"] == "person"
    assert job["events_total"] == len(job["events"])

    # Tracks per frame with the results; an event's track is in its frame.
    code, page = api.get(f"/api/analysis/{job['id']}/results?limit=100")
    assert code == 200 and len(page["frames"]) == 70
    by_frame = {row["frame"]: row["tracks"]["people"] for row in page["frames"]}
    for e in cross:
        assert e["track_id"] in {t["id"] for t in by_frame[e["frame"]]}, e
    assert max(len(ts) for ts in by_frame.values()) >= 4
    # Kept, not computed again: the same answer.
    assert api.get(f"/api/analysis/{job['id']}") == (200, job)


def within(measured: int, truth: int) -> bool:
    """Within 10 % of the truth, rounded up to a whole person (so at least 1 either way)."""
    return abs(measured - truth) <= math.ceil(0.1 * truth)


def test_vtest_line_counts_within_ten_percent_of_the_count_by_eye(
        api: Api, redis_url: str, model_dir: Path, media_dir: Path) -> None:
    truth = json.loads(LINE_TRUTH.read_text())
    line = {"name": "middle", "kind": "line", "points": truth["line"], "labels": ["person"]}
    job = run_job(api, redis_url, model_dir, media_dir,
                  {"source": "vtest.avi", "types": ["people"], "frame_step": 1,
                   "rules": [line]}, 900)
    assert job["frames_total"] == 795
    counted = {d: job["counts"]["middle"][d] for d in ("a->b", "b->a")}
    print("vtest line: truth", truth["counts"], "measured", counted)
    for direction, expected in truth["counts"].items():
        assert within(counted[direction], expected), (direction, counted, truth["counts"])
