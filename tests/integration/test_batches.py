"""Several frames per infer request (``ModelSpec.batch``): the same detections as one by one.

Real OpenVINO on the real BlazeFace graph, whose heads write their batch of 1 into reshapes:
without the rewrite in ``engine.lanes.batched_model`` the frames of a batch would be folded
into one another and these comparisons would fail.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import openvino as ov
import openvino.opset13 as ops
import pytest

from elastic_inference.bench.frames import sample_video, video_jpegs
from elastic_inference.core.errors import ModelError
from elastic_inference.core.result import Detection, box_iou
from elastic_inference.engine.factory import load_detector
from elastic_inference.engine.models import BUILTIN_MODELS
from elastic_inference.engine.openvino_runtime import OpenVINODetector
from elastic_inference.engine.preprocess import decode_jpeg


def test_a_batched_blazeface_finds_what_it_finds_frame_by_frame(
        model_dir: Path, sample_dir: Path) -> None:
    # 37 frames: four full batches of 8 (each infer request, and the input bound to it,
    # used twice), then 5 that never fill one and run one by one.
    frames = [decode_jpeg(j) for j in
              video_jpegs(sample_video(sample_dir, "face"), 37, (640, 360), step=5)]
    spec = BUILTIN_MODELS["blazeface"]
    assert spec.batch == 8
    batched = OpenVINODetector(spec, model_dir)
    single = OpenVINODetector(replace(spec, batch=1), model_dir)
    try:
        assert (batched.batch, single.batch) == (8, 1)
        got, want = batched.infer(frames), single.infer(frames)
    finally:
        batched.close()
        single.close()
    assert sum(map(len, want)) >= 10, "the sample frames should show faces"
    assert [len(d) for d in got] == [len(d) for d in want]
    for dets, refs in zip(got, want, strict=True):
        for d, r in zip(sorted(dets, key=lambda d: d.box), sorted(refs, key=lambda d: d.box),
                        strict=True):
            assert box_iou(d.box, r.box) >= 0.9 and abs(d.score - r.score) < 0.05


def test_submit_stages_until_a_batch_is_full_and_flush_runs_the_rest(
        model_dir: Path, sample_dir: Path) -> None:
    frame = decode_jpeg(video_jpegs(sample_video(sample_dir, "face"), 1, (640, 360))[0])
    det = OpenVINODetector(BUILTIN_MODELS["blazeface"], model_dir)
    try:
        prepared = det.prepare(frame)
        done = [d for tag in range(7) for d in det.submit(prepared, tag)]
        assert done == []  # seven frames wait for an eighth
        done += det.submit(prepared, 7)  # the batch starts; nothing finished yet to return
        done += det.submit(prepared, 8)
        done += det.flush()  # the batch, and frame 8 on its own
        assert [tag for tag, _ in done] == list(range(9))
        assert len({len(dets) for _, dets in done}) == 1
    finally:
        det.close()


def test_one_request_more_than_the_device_runs_and_each_restarts_before_post_processing(
        model_dir: Path, sample_dir: Path) -> None:
    frames = [decode_jpeg(j) for j in
              video_jpegs(sample_video(sample_dir, "face"), 40, (640, 360), step=5)]
    det = OpenVINODetector(BUILTIN_MODELS["blazeface"], model_dir)
    optimal = int(det._compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS"))
    assert det.num_requests == optimal + 1
    det.close()
    # Two requests, five batches: the third, fourth and fifth reuse a finished request.
    det = OpenVINODetector(BUILTIN_MODELS["blazeface"], model_dir, num_requests=2)
    single = OpenVINODetector(replace(BUILTIN_MODELS["blazeface"], batch=1), model_dir)
    lane = det._full
    decode, running = lane._decode, []

    def spy(outputs: list[np.ndarray], sizes: list[tuple[int, int] | None]
            ) -> list[list[Detection]]:
        running.append(len(lane._pending))  # requests started and not yet read back
        return decode(outputs, sizes)

    lane._decode = spy
    try:
        got, want = det.infer(frames), single.infer(frames)
    finally:
        det.close()
        single.close()
    # A reused request's outputs are read once it runs again (both requests out), then the
    # last two after the flush; reading first would give 1, 1, 1, 1, 0.
    assert running == [2, 2, 2, 1, 0]
    assert [len(d) for d in got] == [len(d) for d in want] and sum(map(len, want)) >= 10
    for dets, refs in zip(got, want, strict=True):
        for d, r in zip(sorted(dets, key=lambda d: d.box), sorted(refs, key=lambda d: d.box),
                        strict=True):
            assert box_iou(d.box, r.box) >= 0.9 and abs(d.score - r.score) < 0.05


def _write_unbatchable_model(path: Path) -> None:
    """An end-to-end-style ``[1, 4, 6]`` output made through a reshape to ``[4, 6]``: its batch
    of 1 is gone from the shape, so no rewrite can let a batch through."""
    param = ops.parameter([1, 64, 64, 3], np.float32, name="images")
    mean = ops.reduce_mean(param, [1, 2, 3], True)
    rows = ops.multiply(mean, ops.constant(np.full((1, 1, 1, 24), 0.01, np.float32)))
    flat = ops.reshape(rows, ops.constant(np.array([4, 6])), False)
    out = ops.unsqueeze(flat, ops.constant(np.array([0])))
    ov.save_model(ov.Model([out], [param], "unbatchable"), str(path), compress_to_fp16=False)


def test_a_graph_that_cannot_take_a_batch_is_refused_naming_the_sidecar_key(
        tmp_path: Path) -> None:
    _write_unbatchable_model(tmp_path / "unbatchable.xml")
    (tmp_path / "unbatchable.json").write_text(json.dumps({"batch": 8, "labels": ["thing"]}))
    with pytest.raises(ModelError, match=r"'unbatchable' cannot run 8 frames per request "
                                         r".*\"batch\" to 1 in its JSON sidecar"):
        load_detector("object", tmp_path, model="unbatchable")
    (tmp_path / "unbatchable.json").write_text(json.dumps({"batch": 1, "labels": ["thing"]}))
    load_detector("object", tmp_path, model="unbatchable").close()  # the same graph, one by one
