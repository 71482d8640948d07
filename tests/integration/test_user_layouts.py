"""Users' own models in every layout, run by a real ``ei infer`` process on a real Redis.

Each model is a small ONNX file built here (tests/onnx_models.py) whose one detection scores
``gain * mean(channel 0)`` of the network input: a red frame and a blue frame go through the
queue, and only the frame whose colour is channel 0 *after* the layout's input defaults
(RGB 0..1 for YOLOv5/v8/end-to-end, BGR 0..255 for YOLOX and OMZ) may come back with it, at
the box the model's constants put there. Bad models and sidecars stop the worker with a
message naming what is wrong.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import redis

from elastic_inference.core import frame as frame_msg
from elastic_inference.core import keys
from elastic_inference.core.queue import FrameQueue
from tests.onnx_models import Head, write_detector

pytestmark = pytest.mark.integration

G = 84  # grid cells of a 64x64 input over strides 8/16/32
TYPE = "thing"


def jpeg(bgr: tuple[int, int, int], w: int = 64, h: int = 48) -> bytes:
    ok, buf = cv2.imencode(".jpg", np.full((h, w, 3), bgr, np.uint8))
    assert ok
    return buf.tobytes()


RED, BLUE = (0, 0, 255), (255, 0, 0)


def run_infer(redis_url: str, model: Path, frames: dict[str, bytes],
              size: tuple[int, int] = (64, 48)) -> dict[str, list[dict[str, Any]]]:
    """Push one frame per stream, run ``ei infer`` until it has done them all, and return
    each stream's detections."""
    client = redis.Redis.from_url(redis_url)
    queue = FrameQueue(client, TYPE, maxlen=100)
    for stream, data in frames.items():
        queue.push(frame_msg.Frame(stream, TYPE, 1, time.time(), size[0], size[1], data).encode())
    proc = infer_process(redis_url, model, len(frames))
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = {}
    for stream in frames:
        entries = client.xrange(keys.results(stream))
        assert len(entries) == 1, (stream, proc.stderr[-3000:])
        result = json.loads(entries[0][1][b"result"])
        assert result["model"] == model.stem
        out[stream] = result["detections"]
    return out


def infer_process(redis_url: str, model: Path, frames: int = 1) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "elastic_inference.cli", "infer", "--type", TYPE,
         "--model", str(model), "--model-dir", str(model.parent), "--max-frames", str(frames),
         "--max-age", "0", "--redis-url", redis_url, "--metrics-port", "0",
         "--metrics-host", "127.0.0.1"],
        capture_output=True, text=True, timeout=180, check=False)


def one(detections: list[dict[str, Any]]) -> dict[str, Any]:
    assert len(detections) == 1, detections
    return detections[0]


def assert_box(got: dict[str, Any], label: str, score: float,
               box: tuple[float, float, float, float]) -> None:
    assert got["label"] == label
    assert got["score"] == pytest.approx(score, abs=0.03)  # JPEG moves colours a little
    assert got["box"] == pytest.approx(list(box), abs=2e-3)


def test_yolov5_head_with_a_labels_file(redis_url: str, tmp_path: Path) -> None:
    t = np.zeros((1, 3 * G, 7), np.float32)
    t[0, 10, :7] = [32, 16, 20, 10, 0.0, 0.1, 0.9]  # obj = 0.9 * red: dog at (22, 11, 42, 21)
    t[0, 11, :7] = [33, 17, 20, 10, 0.0, 0.1, 0.8]  # the same dog, lower: NMS drops it
    model = write_detector(tmp_path / "v5.onnx", [Head("output0", t, {(0, 10, 4): 0.9,
                                                                       (0, 11, 4): 0.9})])
    (tmp_path / "v5.labels").write_text("cat\ndog\n")
    got = run_infer(redis_url, model, {"red": jpeg(RED), "blue": jpeg(BLUE)})
    assert_box(one(got["red"]), "dog", 0.81, (22 / 64, 11 / 64, 42 / 64, 21 / 64))
    assert got["blue"] == []


def test_yolov8_head(redis_url: str, tmp_path: Path) -> None:
    t = np.zeros((1, 6, G), np.float32)
    t[0, :4, 5] = [32, 32, 16, 32]
    model = write_detector(tmp_path / "v8.onnx", [Head("output0", t, {(0, 5, 5): 0.9})])
    (tmp_path / "v8.json").write_text(json.dumps({"labels": ["cat", "dog"]}))
    got = run_infer(redis_url, model, {"red": jpeg(RED), "blue": jpeg(BLUE)})
    assert_box(one(got["red"]), "dog", 0.9, (0.375, 0.25, 0.625, 0.75))
    assert got["blue"] == []


def test_yolox_raw_head_is_grid_decoded_and_fed_bgr(redis_url: str, tmp_path: Path) -> None:
    t = np.zeros((1, G, 7), np.float32)
    t[0, 70, :6] = [0.5, 0.25, math.log(2.0), 0.0, 0.0, 0.9]  # stride 16, cell (2, 1)
    model = write_detector(tmp_path / "yx.onnx", [Head("output", t, {(0, 70, 4): 0.9 / 255})])
    (tmp_path / "yx.json").write_text(json.dumps({"labels": ["cat", "dog"]}))
    got = run_infer(redis_url, model, {"red": jpeg(RED), "blue": jpeg(BLUE)})
    assert got["red"] == []  # BGR 0..255: channel 0 is blue
    assert_box(one(got["blue"]), "cat", 0.81, (24 / 64, 12 / 64, 56 / 64, 28 / 64))


def test_end_to_end_rows(redis_url: str, tmp_path: Path) -> None:
    rows = np.zeros((1, 300, 6), np.float32)
    rows[0, 0] = [8, 8, 24, 40, 0.0, 1]
    rows[0, 1] = [10, 8, 24, 40, 0.0, 1]  # a neighbour: end-to-end models get no NMS
    model = write_detector(tmp_path / "v10.onnx", [Head("output0", rows, {(0, 0, 4): 0.9,
                                                                          (0, 1, 4): 0.8})])
    got = run_infer(redis_url, model, {"red": jpeg(RED), "blue": jpeg(BLUE)})
    assert [d["label"] for d in got["red"]] == ["1", "1"]  # no labels: class ids
    assert_box(got["red"][0], "1", 0.9, (8 / 64, 8 / 64, 24 / 64, 40 / 64))
    assert got["blue"] == []


def test_end_to_end_boxes_and_logits(redis_url: str, tmp_path: Path) -> None:
    boxes = np.zeros((1, 50, 4), np.float32)
    boxes[0, 7] = [0.5, 0.25, 0.5, 0.25]  # cx, cy, w, h normalised
    logits = np.full((1, 50, 3), -6.0, np.float32)
    model = write_detector(tmp_path / "detr.onnx", [
        Head("pred_logits", logits, {(0, 7, 2): 8.0}),  # red: sigmoid(2) = 0.88
        Head("pred_boxes", boxes)])
    (tmp_path / "detr.json").write_text(json.dumps({"labels": ["a", "b", "c"]}))
    got = run_infer(redis_url, model, {"red": jpeg(RED), "blue": jpeg(BLUE)})
    assert_box(one(got["red"]), "c", 1 / (1 + math.exp(-2)), (0.25, 0.125, 0.75, 0.375))
    assert got["blue"] == []


def test_omz_detection_output_onnx(redis_url: str, tmp_path: Path) -> None:
    rows = np.zeros((1, 1, 2, 7), np.float32)
    rows[0, 0, 0] = [0, 1, 0, 0.1, 0.2, 0.5, 0.6]
    rows[0, 0, 1] = [-1, 0, 0, 0, 0, 0, 0]
    model = write_detector(tmp_path / "omz.onnx", [Head("detection_out", rows,
                                                        {(0, 0, 0, 2): 0.9 / 255})])
    got = run_infer(redis_url, model, {"red": jpeg(RED), "blue": jpeg(BLUE)})
    assert_box(one(got["blue"]), "1", 0.9, (0.1, 0.2, 0.5, 0.6))
    assert got["red"] == []


def test_mediapipe_ssd_heads_with_anchors_from_the_sidecar(
        redis_url: str, tmp_path: Path) -> None:
    # One layer of stride 8 on 64x64, one fixed-size anchor per cell: 64 anchors; anchor 27
    # is cell (3, 3), centred at 3.5 / 8. Regressions x, y, w, h in 1/64 of the input.
    regress = np.zeros((1, 64, 16), np.float32)
    regress[0, 27, :4] = [0, 0, 16, 16]
    logits = np.full((1, 64, 1), -10.0, np.float32)
    model = write_detector(tmp_path / "ssd.onnx", [
        Head("regressors", regress),
        Head("classificators", logits, {(0, 27, 0): 12.0})])  # red: (255-127.5)/127.5 = 1
    (tmp_path / "ssd.json").write_text(json.dumps({
        "layout": "mediapipe-ssd", "labels": ["face"],
        "anchors": {"num_layers": 1, "min_scale": 0.2, "max_scale": 0.9, "input_w": 64,
                    "input_h": 64, "strides": [8], "interpolated_scale_aspect_ratio": 0.0,
                    "fixed_anchor_size": True},
        "decode": {"order": "xywh", "x_scale": 64, "y_scale": 64, "w_scale": 64,
                   "h_scale": 64}}))
    got = run_infer(redis_url, model, {"red": jpeg(RED), "blue": jpeg(BLUE)})
    assert_box(one(got["red"]), "face", 1 / (1 + math.exp(-2)),
               (0.3125, 0.3125, 0.5625, 0.5625))
    assert got["blue"] == []


def test_dynamic_input_letterboxed_with_per_channel_normalisation(
        redis_url: str, tmp_path: Path) -> None:
    t = np.zeros((1, 6, G), np.float32)
    t[0, :4, 5] = [32, 32, 32, 32]  # (16, 16, 48, 48): the middle of the input
    model = write_detector(tmp_path / "dyn.onnx", [Head("output0", t, {(0, 5, 5): 0.9})],
                           input_shape=(1, 3, "height", "width"))
    proc = infer_process(redis_url, model)
    assert proc.returncode == 1
    assert "dynamic input size" in proc.stderr and '"input_w" and "input_h"' in proc.stderr
    (tmp_path / "dyn.json").write_text(json.dumps({
        "input_w": 64, "input_h": 64, "resize": "letterbox", "layout": "yolov8",
        "mean": [0, 0, 0], "scale": [255, 1, 1]}))
    # A 128x64 frame fills the 64x64 input's middle rows 16..48: the box covers its height.
    got = run_infer(redis_url, model, {"red": jpeg(RED, 128, 64), "blue": jpeg(BLUE, 128, 64)},
                    size=(128, 64))
    # Channel 0 averages red (1.0) over half the input and grey padding (114/255) elsewhere.
    assert_box(one(got["red"]), "1", 0.9 * (0.5 + 0.5 * 114 / 255), (0.25, 0.0, 0.75, 1.0))
    assert got["blue"] == []


def test_unreadable_outputs_stop_the_worker_naming_shapes_and_keys(
        redis_url: str, tmp_path: Path) -> None:
    model = write_detector(tmp_path / "odd.onnx",
                           [Head("a", np.zeros((1, 1000), np.float32)),
                            Head("b", np.zeros((1, 2, 3, 3), np.float32))])
    proc = infer_process(redis_url, model)
    assert proc.returncode == 1
    err = proc.stderr
    assert "ei infer: model 'odd': its outputs [1, 1000], [1, 2, 3, 3]" in err
    assert "match no known layout" in err
    for key in ('"layout"', '"labels"', '"input_w"/"input_h"', '"strides"'):
        assert key in err, key
    assert "Traceback" not in err


def test_bad_sidecar_stops_the_worker_naming_the_key(redis_url: str, tmp_path: Path) -> None:
    t = np.zeros((1, 6, G), np.float32)
    model = write_detector(tmp_path / "m.onnx", [Head("output0", t)])
    (tmp_path / "m.json").write_text(json.dumps({"treshold": 0.4}))
    proc = infer_process(redis_url, model)
    assert proc.returncode == 1 and 'unknown key(s) "treshold"' in proc.stderr
    (tmp_path / "m.json").write_text(json.dumps({"threshold": "high"}))
    proc = infer_process(redis_url, model)
    assert proc.returncode == 1
    assert "sidecar key 'threshold' must be a number, not \"high\"" in proc.stderr
    assert "Traceback" not in proc.stderr
