from __future__ import annotations

import pytest

from elastic_inference.core.framestore import MIN_FRAMES, store_length


@pytest.mark.parametrize("fps,keep,queue,expected", [
    (15.0, 2.0, 0, 30),            # 2 s of a 15 fps camera
    (2.0, 2.0, 0, MIN_FRAMES),     # a slow stream still keeps a few
    (0.0, 2.0, 0, 60),             # unpaced: counted at 30 fps
    (10.0, 2.0, 100, 100),         # never fewer than a queue holds
    (29.97, 1.0, 16, 30),          # rounded up
])
def test_the_store_keeps_the_longer_of_its_time_and_the_queue_bound(
        fps: float, keep: float, queue: int, expected: int) -> None:
    assert store_length(fps, keep, queue) == expected
