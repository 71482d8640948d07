from __future__ import annotations

import re

import cv2
import numpy as np
import pytest

from elastic_inference.core.errors import InvalidMessage
from elastic_inference.core.keys import STREAM_ID_RE
from elastic_inference.engine.preprocess import one_thread_per_call
from elastic_inference.services.infer import decode_jpeg, default_worker_id, reduction_for


@pytest.mark.parametrize("w,h,size,expected", [
    (1280, 720, (300, 300), 2), (1280, 720, (128, 128), 4), (1920, 1080, (128, 128), 8),
    (640, 360, (300, 300), 1), (100, 100, (300, 300), 1),
])
def test_reduction_never_goes_below_model_input(w: int, h: int, size: tuple[int, int],
                                                expected: int) -> None:
    f = reduction_for(w, h, size)
    assert f == expected
    assert f == 1 or (w // f >= size[0] and h // f >= size[1])


def test_decode_at_reduced_size_and_corrupt_input() -> None:
    ok, buf = cv2.imencode(".jpg", np.full((360, 640, 3), 128, np.uint8))
    assert ok
    assert decode_jpeg(buf.tobytes(), 2).shape == (180, 320, 3)
    with pytest.raises(InvalidMessage):
        decode_jpeg(b"\xff\xd8\xff" + b"\x00" * 64)


def test_worker_id_is_a_valid_key_part() -> None:
    wid = default_worker_id("face")
    assert wid.startswith("face-") and STREAM_ID_RE.match(wid)
    assert re.search(r"-\d+$", wid)


def test_the_worker_keeps_opencv_to_the_calling_thread() -> None:
    """The decode pool is the worker's parallelism; OpenCV's own pool doubled a resize's CPU."""
    before = cv2.getNumThreads()
    try:
        cv2.setNumThreads(2)
        one_thread_per_call()
        assert cv2.getNumThreads() == 1
    finally:
        cv2.setNumThreads(before)
