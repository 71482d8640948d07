from __future__ import annotations

import json

import pytest

from elastic_inference.core.errors import InvalidMessage
from elastic_inference.core.result import (
    Detection,
    Result,
    box_iou,
    count_matched,
    decode_result,
)


def sample() -> Result:
    return Result(stream="s1", type="people", seq=7, ts_capture=10.0, ts_done=10.5,
                  model="ssd", device="CPU", w=640, h=360,
                  detections=(Detection("Person", 0.9, (0.1, 0.2, 0.3, 0.4)),))


def test_json_shape_matches_the_wire_contract() -> None:
    data = json.loads(sample().encode())
    assert data == {
        "v": 1, "stream": "s1", "type": "people", "seq": 7, "ts_capture": 10.0,
        "ts_done": 10.5, "model": "ssd", "device": "CPU", "frame": {"w": 640, "h": 360},
        "detections": [{"label": "Person", "score": 0.9, "box": [0.1, 0.2, 0.3, 0.4]}],
    }


def test_round_trip() -> None:
    assert decode_result(sample().encode()) == sample()


@pytest.mark.parametrize("raw", [b"{", b"[]", b'{"v": 2}', b'{"v": 1, "stream": "s"}'])
def test_bad_results_are_invalid(raw: bytes) -> None:
    with pytest.raises(InvalidMessage):
        decode_result(raw)


def test_bad_detection_is_invalid() -> None:
    data = json.loads(sample().encode())
    data["detections"][0]["score"] = 3
    with pytest.raises(InvalidMessage, match="score"):
        decode_result(json.dumps(data))


def test_box_iou_and_matching_pairs_each_candidate_once() -> None:
    a = (0.0, 0.0, 0.5, 0.5)
    assert box_iou(a, a) == 1.0
    assert box_iou(a, (0.5, 0.5, 1.0, 1.0)) == 0.0
    assert abs(box_iou(a, (0.0, 0.0, 0.5, 0.25)) - 0.5) < 1e-9
    ref = [Detection("Person", 0.9, a), Detection("Person", 0.8, (0.01, 0.0, 0.5, 0.5)),
           Detection("Car", 0.7, (0.6, 0.6, 0.9, 0.9))]
    # One candidate for two overlapping references: only one can match; a label mismatch
    # never matches, however exact the box.
    cand = [Detection("Person", 0.6, a), Detection("Person", 0.7, (0.6, 0.6, 0.9, 0.9))]
    assert count_matched(ref, cand) == 1
    assert count_matched(ref, ref) == 3
    assert count_matched([], cand) == 0
