"""Pure logic of ``ei stream``: source parsing, ids, redaction, pacing, sizes, settings, reads."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from elastic_inference.core.errors import ConfigError
from elastic_inference.core.keys import STREAM_ID_RE
from elastic_inference.core.settings import StreamSettings, parse_settings
from elastic_inference.engine.preprocess import encode_jpeg, scaled_size
from elastic_inference.services import stream
from elastic_inference.services.stream import (
    Pacer,
    Read,
    Source,
    SourceSpec,
    derive_stream_id,
    parse_source,
    reopen_delay,
    sanitize_id,
)
from tests.fakes import FakeCapture, FakeClock

# ----------------------------------------------------------------------------- sources and ids


@pytest.mark.parametrize(("text", "kind", "target", "public"), [
    ("samples/vtest.avi", "file", "samples/vtest.avi", "vtest.avi"),
    ("/data/My Clip (1).mp4", "file", "/data/My Clip (1).mp4", "My Clip (1).mp4"),
    ("file:///data/clip.avi", "file", "/data/clip.avi", "clip.avi"),
    ("0", "webcam", 0, "0"),
    (" 2 ", "webcam", 2, "2"),
    ("/dev/video1", "webcam", "/dev/video1", "/dev/video1"),
    ("rtsp://cam.local:554/live", "url", "rtsp://cam.local:554/live", "rtsp://cam.local:554/live"),
    ("http://u:pw@h/x.mjpg", "url", "http://u:pw@h/x.mjpg", "http://u:***@h/x.mjpg"),
])
def test_parse_source_kinds(text: str, kind: str, target: object, public: str) -> None:
    spec = parse_source(text)
    assert (spec.kind, spec.target, spec.public) == (kind, target, public)
    assert spec.live == (kind != "file")


def test_parse_source_rejects_empty_and_unknown_schemes_naming_the_variable() -> None:
    with pytest.raises(ConfigError, match="EI_SOURCE"):
        parse_source("  ")
    with pytest.raises(ConfigError, match="EI_SOURCE") as info:
        parse_source("ftp://user:hunter2@host/clip.avi")
    assert "hunter2" not in str(info.value)


@pytest.mark.parametrize(("source", "expected"), [
    ("samples/vtest.avi", "vtest"),
    ("/data/My Clip (1).mp4", "My-Clip-1"),
    ("/data/.hidden.avi", "hidden"),
    ("/data/été.avi", "ete"),
    ("/data/日本.avi", "stream"),
    ("0", "cam0"),
    ("12", "cam12"),
    ("/dev/video3", "cam3"),
    ("rtsp://admin:secret@10.0.0.7:554/Streaming/Channels/101?token=abc",
     "10.0.0.7-554-Streaming-Channels-101"),
    ("https://cams.example.com/lobby.mjpg", "cams.example.com-lobby.mjpg"),
    ("http://[::1]:8080/", "1-8080"),
])
def test_derive_stream_id(source: str, expected: str) -> None:
    stream_id = derive_stream_id(parse_source(source))
    assert stream_id == expected
    assert STREAM_ID_RE.match(stream_id)
    assert "secret" not in stream_id and "admin" not in stream_id and "token" not in stream_id


def test_long_names_are_truncated_but_stay_distinct() -> None:
    a = sanitize_id("x" * 100 + "a")
    b = sanitize_id("x" * 100 + "b")
    assert a != b
    assert len(a) <= 64 and len(b) <= 64
    assert STREAM_ID_RE.match(a) and STREAM_ID_RE.match(b)


# ----------------------------------------------------------------------------- pacing


def test_pacer_schedule_does_not_drift() -> None:
    clock = FakeClock()
    pacer = Pacer(10.0, clock=clock)
    slots = []
    for _ in range(50):
        clock.t += pacer.due_in()  # sleep exactly until due ...
        clock.t += 0.013  # ... then take a while to read and send (jitter, < one period)
        slots.append(clock.t)
        pacer.mark()
    # The schedule anchors at the first frame; from then on frame k goes out exactly k periods
    # later: the 13 ms of work per frame does not accumulate.
    for k in range(1, 50):
        assert slots[k] - slots[1] == pytest.approx((k - 1) * 0.1)


def test_pacer_never_sleeps_when_behind_and_re_anchors_instead_of_bursting() -> None:
    clock = FakeClock()
    pacer = Pacer(10.0, clock=clock)
    pacer.mark()
    clock.t += 0.15  # half a period late: due at once, schedule kept
    assert pacer.due_in() == 0
    pacer.mark()
    assert pacer.due_in() == pytest.approx(0.05)
    clock.t += 2.0  # a long stall (many periods): due at once, no burst afterwards
    assert pacer.due_in() == 0
    pacer.mark()
    assert pacer.due_in() == pytest.approx(0.1)


def test_pacer_without_fps_never_waits() -> None:
    clock = FakeClock()
    pacer = Pacer(0.0, clock=clock)
    for _ in range(3):
        assert pacer.due_in() == 0
        pacer.mark()


def test_reopen_delay_grows_and_is_capped() -> None:
    delays = [reopen_delay(n) for n in range(1, 12)]
    assert delays[:4] == [0.5, 1.0, 2.0, 4.0]
    assert delays == sorted(delays)
    assert max(delays) == stream.REOPEN_CAP == 10.0


# ----------------------------------------------------------------------------- frames


@pytest.mark.parametrize(("w", "h", "max_width", "expected"), [
    (1920, 1080, 1280, (1280, 720)),
    (1280, 720, 1280, (1280, 720)),
    (640, 480, 1280, (640, 480)),
    (768, 576, 0, (768, 576)),
    (4000, 3, 100, (100, 1)),
])
def test_scaled_size(w: int, h: int, max_width: int, expected: tuple[int, int]) -> None:
    assert scaled_size(w, h, max_width) == expected


def test_encode_jpeg_downscales_and_rejects_non_images() -> None:
    image = np.zeros((240, 400, 3), np.uint8)
    cv2.rectangle(image, (50, 50), (150, 150), (0, 255, 0), -1)
    encoded = encode_jpeg(image, max_width=200, quality=80)
    assert encoded is not None
    jpeg, w, h = encoded
    assert (w, h) == (200, 120)
    decoded = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert decoded is not None and decoded.shape == (120, 200, 3)
    assert encode_jpeg(None, 0, 80) is None
    assert encode_jpeg(np.zeros((0, 0, 3), np.uint8), 0, 80) is None
    assert encode_jpeg(np.zeros((4, 4, 3), np.float32), 0, 80) is None


# ----------------------------------------------------------------------------- settings


def test_settings_errors_name_the_variable() -> None:
    with pytest.raises(ConfigError, match="EI_FPS"):
        parse_settings(StreamSettings, [], {"EI_FPS": "-1"})
    with pytest.raises(ConfigError, match="EI_FPSS"):
        parse_settings(StreamSettings, [], {"EI_FPSS": "10"})
    with pytest.raises(ConfigError, match="--jpeg-quality"):
        parse_settings(StreamSettings, ["--jpeg-quality", "0"], {})
    with pytest.raises(ConfigError, match="EI_TYPES"):
        parse_settings(StreamSettings, [], {"EI_TYPES": "Face"})


def test_main_requires_a_source(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in [k for k in __import__("os").environ if k.startswith("EI_")]:
        monkeypatch.delenv(key)
    with pytest.raises(ConfigError, match="EI_SOURCE"):
        stream.main([])


# ----------------------------------------------------------------------------- reading


IMG = np.zeros((6, 8, 3), np.uint8)


def test_file_source_tells_a_broken_frame_from_the_end() -> None:
    cap = FakeCapture([IMG, False, IMG, IMG])
    source = Source(SourceSpec("file", "x.avi", "x.avi"), opener=lambda _spec: cap)
    assert source.open()
    assert (source.fps, source.size, source.frame_count) == (20.0, (8, 6), 4)
    assert source.read()[0] is Read.FRAME
    assert source.read()[0] is Read.ERROR  # mid-file failure: skip it
    assert source.read()[0] is Read.FRAME
    assert source.read()[0] is Read.FRAME
    assert source.read()[0] is Read.END
    source.close()
    assert cap.released and not source.is_open


def test_live_source_grabs_every_frame_but_decodes_only_wanted_ones() -> None:
    cap = FakeCapture([IMG, IMG, False])
    source = Source(SourceSpec("webcam", 0, "0"), opener=lambda _spec: cap)
    assert source.open()
    assert source.read(want=False) == (Read.SKIPPED, None)
    status, image = source.read(want=True)
    assert status is Read.FRAME and image is IMG
    assert source.read()[0] is Read.ERROR  # live failures are errors, never an "end"


def test_source_that_does_not_open_is_released() -> None:
    cap = FakeCapture([], opened=False)
    source = Source(SourceSpec("url", "rtsp://h/x", "rtsp://h/x"), opener=lambda _spec: cap)
    assert not source.open()
    assert cap.released and not source.is_open
    assert source.read()[0] is Read.ERROR


def test_nonsense_fps_from_a_backend_is_ignored() -> None:
    for fps in (0.0, float("nan"), 90000.0):
        cap = FakeCapture([IMG], fps=fps)
        source = Source(SourceSpec("file", "x.avi", "x.avi"),
                        opener=lambda _spec: cap)  # noqa: B023 - opened in this same turn
        assert source.open()
        assert source.fps == 0.0
