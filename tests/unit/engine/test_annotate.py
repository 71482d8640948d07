"""Annotation draws inside the box, keeps colours stable, round-trips JPEG."""

from __future__ import annotations

import subprocess
import sys

import cv2
import numpy as np
import pytest

from elastic_inference.core.analytics.tracker import Track
from elastic_inference.core.result import Detection
from elastic_inference.engine.annotate import (
    HIGHLIGHT,
    annotate_jpeg,
    draw_detections,
    draw_tracks,
    label_colour,
    track_snapshot,
)
from tests.jpegs import declaring


def test_draw_changes_pixels_on_the_box_only() -> None:
    img = np.full((200, 300, 3), 40, dtype=np.uint8)
    det = Detection("face", 0.9, (0.2, 0.3, 0.6, 0.8))
    out = draw_detections(img, [det])
    assert out.shape == img.shape and out.dtype == np.uint8
    assert np.array_equal(img, np.full_like(img, 40))  # input untouched
    changed = np.any(out != img, axis=2)
    x1, y1, x2, y2 = 60, 60, 179, 159
    assert changed[y1 : y2 + 1, x1].any() and changed[y2, x1 : x2 + 1].any()
    assert not changed[y1 + 20 : y2 - 5, x1 + 5 : x2 - 5].any()  # interior stays clear
    assert not changed[190:, :].any()  # far from the box nothing changes


def test_colour_is_stable_per_label() -> None:
    assert label_colour("Person") == label_colour("Person")
    assert label_colour("Person") != label_colour("Car")
    # Stable across processes too (str hash() is salted per process).
    code = "from elastic_inference.engine.annotate import label_colour; print(label_colour('Car'))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == str(label_colour("Car"))


def test_annotate_jpeg_round_trip() -> None:
    img = np.full((120, 160, 3), 200, dtype=np.uint8)
    ok, buf = cv2.imencode(".jpg", img)
    assert ok
    jpeg = annotate_jpeg(buf.tobytes(), [Detection("Car", 0.5, (0.1, 0.1, 0.9, 0.9))], quality=70)
    decoded = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert decoded is not None
    assert decoded.shape == img.shape
    assert np.abs(decoded.astype(int) - 200).max() > 50


def test_annotate_refuses_a_decode_bomb_before_decoding() -> None:
    with pytest.raises(ValueError, match="32767x32767 exceeds"):
        annotate_jpeg(declaring(32767, 32767), [])
    with pytest.raises(ValueError, match="not a decodable JPEG"):
        annotate_jpeg(b"\xff\xd8 not really", [])


def test_tracks_are_drawn_with_the_highlighted_one_white_and_thicker() -> None:
    img = np.full((200, 300, 3), 40, dtype=np.uint8)
    left = Track(3, "person", (0.1, 0.3, 0.3, 0.9), 0.9, 5, 5, 0)
    right = Track(9, "person", (0.6, 0.3, 0.8, 0.9), 0.9, 5, 5, 0)
    out = draw_tracks(img, [left, right], highlight=9)
    white = np.all(out == HIGHLIGHT, axis=2)
    # The highlighted box's left edge (x = 179) is white and 3 px thick; the other is not white.
    assert white[120:170, 178:181].all()
    assert not white[120:170, 25:35].any() and np.any(out[120:170, 29] != 40)
    assert np.array_equal(img, np.full_like(img, 40))  # input untouched
    none_lit = draw_tracks(img, [left, right], highlight=None)
    assert not np.all(none_lit == HIGHLIGHT, axis=2)[120:170, 178:181].all()


def test_track_snapshot_round_trip_and_refusal() -> None:
    ok, buf = cv2.imencode(".jpg", np.full((120, 160, 3), 90, dtype=np.uint8))
    assert ok
    jpeg = track_snapshot(buf.tobytes(), [Track(1, "car", (0.1, 0.1, 0.9, 0.9), 0.8, 2, 2, 0)], 1)
    decoded = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert decoded is not None and decoded.shape == (120, 160, 3)
    assert decoded.max() > 200  # the white highlight
    with pytest.raises(ValueError, match="not a decodable JPEG"):
        track_snapshot(b"\xff\xd8 not really", [], None)
    ok, wide = cv2.imencode(".jpg", np.full((600, 1600, 3), 90, dtype=np.uint8))
    small = cv2.imdecode(np.frombuffer(track_snapshot(wide.tobytes(), [], None), np.uint8),
                         cv2.IMREAD_COLOR)
    assert small is not None and small.shape == (240, 640, 3)  # kept for days: made smaller


def test_engine_imports_without_openvino() -> None:
    code = (
        "import sys; import elastic_inference.engine, elastic_inference.engine.annotate, "
        "elastic_inference.engine.fetch, elastic_inference.engine.openvino_runtime; "
        "assert 'openvino' not in sys.modules, 'openvino imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
