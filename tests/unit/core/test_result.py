from __future__ import annotations

import json

import pytest

from elastic_inference.core.errors import InvalidMessage
from elastic_inference.core.result import Detection, Result, decode_result


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
