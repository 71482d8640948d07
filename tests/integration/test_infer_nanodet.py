"""NanoDet, the default of people and car, in a real ``ei infer`` process on vtest.avi frames.

Frames go into the real Redis queues as a stream service would push them (JPEG, 768x576); the
worker runs as its own process and exits after them. In every frame of vtest.avi a white van
is parked at the top right (about x 0.85-0.94, y 0.08-0.17 of the frame); COCO calls it a
truck. Each frame checked here shows 3 to 8 people (tests/data of the evaluation work counts
237 in 40 frames).
"""

from __future__ import annotations

import time
from pathlib import Path

import cv2
import pytest
import redis

from elastic_inference.core import frame as frame_msg
from elastic_inference.core import keys
from elastic_inference.core.queue import FrameQueue
from elastic_inference.core.result import Result, box_iou, decode_result
from tests.processes import Service
from tests.redis_server import RedisServer

pytestmark = pytest.mark.integration

FRAMES = range(0, 200, 20)  # 10 frames spread over the first 8 s
VAN = (0.85, 0.08, 0.94, 0.17)


def vtest_jpegs(sample_dir: Path) -> list[tuple[int, bytes]]:
    cap = cv2.VideoCapture(str(sample_dir / "vtest.avi"))
    out: list[tuple[int, bytes]] = []
    try:
        for index in range(max(FRAMES) + 1):
            ok, image = cap.read()
            assert ok, f"vtest.avi ended at frame {index}"
            if index in FRAMES:
                ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 85])
                assert ok
                out.append((index, buf.tobytes()))
    finally:
        cap.release()
    return out


@pytest.fixture(scope="module")
def results(redis_server: RedisServer, model_dir: Path, sample_dir: Path
            ) -> dict[str, list[Result]]:
    """Every frame through an ``ei infer`` process per type; its results per type."""
    redis_url = redis_server.url
    client = redis.Redis.from_url(redis_url)
    client.flushall()
    jpegs = vtest_jpegs(sample_dir)
    out: dict[str, list[Result]] = {}
    for infer_type in ("people", "car"):
        stream = f"vtest-{infer_type}"
        queue = FrameQueue(client, infer_type, maxlen=100)
        for index, jpeg in jpegs:
            queue.push(frame_msg.Frame(stream=stream, type=infer_type, seq=index,
                                       ts=time.time(), w=768, h=576, jpeg=jpeg).encode())
        worker = Service(["infer", "--type", infer_type, "--model-dir", str(model_dir),
                          "--max-frames", str(len(jpegs)), "--max-age", "0"],
                         env={"EI_REDIS_URL": redis_url})
        try:
            code = worker.proc.wait(timeout=180)
        finally:
            worker.stop()
        assert code == 0, worker.output()[-3000:]
        entries = client.xrange(keys.results(stream))
        out[infer_type] = [decode_result(fields[b"result"]) for _, fields in entries]
    return out


def test_people_are_found_in_every_frame(results: dict[str, list[Result]]) -> None:
    people = results["people"]
    assert [r.seq for r in people] == list(FRAMES)
    assert {r.model for r in people} == {"nanodet-g-416"}
    assert {d.label for r in people for d in r.detections} == {"person"}
    counts = [len(r.detections) for r in people]
    assert min(counts) >= 2 and sum(counts) >= 4 * len(people), counts
    for r in people:
        for d in r.detections:  # upright people: taller than wide, not the whole frame
            x1, y1, x2, y2 = d.box
            assert y2 - y1 > x2 - x1 and y2 - y1 < 0.5, d


def test_the_parked_van_is_a_truck_at_the_top_right(results: dict[str, list[Result]]) -> None:
    cars = results["car"]
    assert [r.seq for r in cars] == list(FRAMES)
    assert {d.label for r in cars for d in r.detections} <= {"car", "truck", "bus", "motorcycle"}
    with_van = [r.seq for r in cars
                if any(d.label == "truck" and box_iou(d.box, VAN) >= 0.5 for d in r.detections)]
    assert len(with_van) >= len(cars) - 1, [r.detections for r in cars]
    assert not any(d.label == "person" for r in cars for d in r.detections)
