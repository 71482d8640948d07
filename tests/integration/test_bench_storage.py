"""``ei bench``'s frame storage figures on a real redis-server and a real ``ei websocket``:
the JPEG is written to Redis once whatever the number of types, and the viewer's bytes are
counted."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import redis

from elastic_inference.bench.frames import sample_video, video_jpegs
from elastic_inference.bench.storage import measure_storage
from elastic_inference.core.result import Detection, Result

pytestmark = pytest.mark.integration

SIZE = (768, 576)  # the sample's own size


@pytest.mark.timeout(180)
def test_a_frame_is_written_once_for_one_type_or_three(redis_url: str,
                                                       redis_client: redis.Redis,
                                                       sample_dir: Path) -> None:
    jpegs = video_jpegs(sample_video(sample_dir, "people"), 6, SIZE)
    result = Result("x", "people", 0, time.time(), time.time(), "nanodet-g-416", "CPU", *SIZE,
                    tuple(Detection("person", 0.8, (0.1 * i, 0.2, 0.1 * i + 0.05, 0.6))
                          for i in range(4)))
    one, three = measure_storage(redis_client, redis_url, jpegs, SIZE, result)
    jpeg = sum(map(len, jpegs)) / len(jpegs)
    for fig in (one, three):
        assert fig.frames == 6 and fig.jpeg == jpeg
        # The frame store's entry is the JPEG and a little protocol, once per frame.
        assert jpeg < fig.frame_store < jpeg + 300, fig
        # Each type's queue message and results are small (no JPEG in them).
        assert 0 < fig.queues < 400 * fig.types and 0 < fig.outputs < 2000 * fig.types, fig
        assert fig.redis == fig.frame_store + fig.queues + fig.outputs
        # Before the frame store every type's queue message and ei:out entry held the JPEG.
        assert fig.before > 2 * fig.types * jpeg, fig
        assert fig.ws_messages > 0 and fig.websocket > 0, fig
    assert (one.types, three.types) == (1, 3)
    assert three.frame_store == pytest.approx(one.frame_store, abs=8)  # stored once for 3
    # Everything a frame of three types writes to Redis, results and history included.
    assert three.ratio <= 1.1 < 2 * 3 < three.before / three.jpeg, three
    # A viewer gets the JPEG once per frame: one binary message, the other results as text.
    for fig in (one, three):
        assert fig.ws_messages == pytest.approx(1.0, abs=0.2), fig
        assert fig.jpeg < fig.websocket <= 1.1 * fig.jpeg, fig
    # Nothing is left behind in Redis.
    assert not redis_client.keys("ei:frames:bench-bytes-*")
    assert not redis_client.keys("ei:out:bench-bytes-*")
