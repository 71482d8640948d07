"""The default workers' accuracy through the wire contract, on frames checked by eye.

Frames of ``vtest.avi`` named in ``tests/data/vtest-truth.json`` are sent as ``ei stream`` sends
them (JPEG q80 in a frame message on the type's queue), a real ``ei infer`` process of the
type's default model handles them, and the results are read back from the broker and scored
against the truth (issue 12's acceptance: people recall and precision >= 0.85 at IoU 0.5; the
parked van in >= 90 % and the car beside it in >= 80 % of the frames).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis

from elastic_inference.cli.models_eval import read_frames
from elastic_inference.core import keys
from elastic_inference.core.evaluate import Report, Scored, evaluate
from elastic_inference.core.frame import Frame
from elastic_inference.core.queue import FrameQueue
from elastic_inference.core.truth import Truth, load_truth
from elastic_inference.engine.preprocess import encode_jpeg
from tests.conftest import REPO
from tests.processes import environment

pytestmark = pytest.mark.integration

TRUTH = REPO / "tests" / "data" / "vtest-truth.json"
STREAM = "vtest"


def through_a_worker(redis_url: str, model_dir: Path, sample_dir: Path, infer_type: str,
                     truth: Truth, precision: str) -> dict[int, list[Scored]]:
    """Detections per truth frame, in pixels, as the broker published them."""
    client = redis.Redis.from_url(redis_url)
    queue = FrameQueue(client, infer_type, maxlen=len(truth.frames) + 1)
    sizes: dict[int, tuple[int, int]] = {}
    for index, image in read_frames(sample_dir / "vtest.avi", sorted(truth.frames)):
        encoded = encode_jpeg(image, 1280, 80)
        assert encoded is not None
        jpeg, w, h = encoded
        sizes[index] = (image.shape[1], image.shape[0])
        queue.push(Frame(STREAM, infer_type, index, time.time(), w, h, jpeg).encode())
    env = {"EI_PRECISION": precision} if precision else {}
    proc = subprocess.run(
        [sys.executable, "-m", "elastic_inference.cli", "infer", "--type", infer_type,
         "--model-dir", str(model_dir), "--max-frames", str(len(truth.frames)),
         "--max-age", "0", "--redis-url", redis_url, "--metrics-port", "0",
         "--metrics-host", "127.0.0.1"],
        capture_output=True, text=True, timeout=300, check=False,
        env=environment(**env))
    assert proc.returncode == 0, proc.stderr[-3000:]
    out: dict[int, list[Scored]] = {}
    for _, fields in client.xrange(keys.results(STREAM)):
        result = json.loads(fields[b"result"])
        w, h = sizes[result["seq"]]
        out[result["seq"]] = [
            Scored(d["label"], d["score"],
                   (d["box"][0] * w, d["box"][1] * h, d["box"][2] * w, d["box"][3] * h))
            for d in result["detections"]]
    assert sorted(out) == sorted(truth.frames), "a frame without a published result"
    client.close()
    return out


def figures(report: Report) -> str:
    return "; ".join(f"{label}: P={c.precision} R={c.recall} ({c.tp}/{c.truth})"
                     for label, c in report.labels.items())


@pytest.mark.parametrize("precision", ["", "f32"])
def test_default_people_worker_finds_the_people_checked_by_eye(
        redis_url: str, model_dir: Path, sample_dir: Path, precision: str) -> None:
    truth = load_truth(TRUTH)
    found = through_a_worker(redis_url, model_dir, sample_dir, "people", truth, precision)
    report = evaluate(truth, found, labels=["person"])
    person = report.labels["person"]
    assert person.truth >= 200  # the file is the one checked by eye, not an empty one
    assert person.recall is not None and person.recall >= 0.85, figures(report)
    assert person.precision is not None and person.precision >= 0.85, figures(report)


@pytest.mark.parametrize("precision", ["", "f32"])
def test_default_car_worker_finds_the_parked_van_and_car(
        redis_url: str, model_dir: Path, sample_dir: Path, precision: str) -> None:
    truth = load_truth(TRUTH)
    found = through_a_worker(redis_url, model_dir, sample_dir, "car", truth, precision)
    report = evaluate(truth, found, labels=["truck", "car"])
    van, car = report.labels["truck"], report.labels["car"]
    assert van.truth == car.truth == len(truth.frames) == 40
    assert van.recall is not None and van.recall >= 0.9, figures(report)
    assert car.recall is not None and car.recall >= 0.8, figures(report)
