"""Real OpenVINO on the real fetched models (``model_dir`` fetches them once per session).

The detection checks run at the device's default precision (BF16 on CPUs with AVX-512 BF16 or
AMX) and at true f32 (what AVX2-only CPUs run), so they hold on every CPU kind, not only on
the one at hand.

Reference boxes were measured on ``skimage.data.astronaut()`` (512x512) and checked by drawing
them: the face (brow to chin, ear to ear) is about x 0.34-0.54, y 0.12-0.36; the astronaut's
body fills x 0.0-0.72 of the frame, top to bottom.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import openvino as ov
import openvino.opset13 as ops
import pytest
from skimage import data

from elastic_inference.core.errors import ModelError
from elastic_inference.core.result import Box, Detection, box_iou
from elastic_inference.engine.detector import Detector
from elastic_inference.engine.factory import load_detector
from elastic_inference.engine.fetch import (
    SHA256,
    TFJS_MODELS,
    convert_tfjs_models,
    fetch_models,
    sha256_file,
)
from elastic_inference.engine.models import BUILTIN_MODELS, OIDV4_LABELS

pytestmark = pytest.mark.integration

FACE_REF: Box = (0.34, 0.12, 0.54, 0.36)
PERSON_REF: Box = (0.0, 0.02, 0.72, 1.0)


def bgr(rgb: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    return bgr(data.astronaut())


@pytest.fixture(scope="module")
def wide_astronaut(astronaut: np.ndarray) -> np.ndarray:
    """1280x720 frame, astronaut scaled to 720x720 at x 280..1000, grey elsewhere."""
    frame = np.full((720, 1280, 3), 90, dtype=np.uint8)
    frame[:, 280:1000] = cv2.resize(astronaut, (720, 720))
    return frame


@pytest.fixture(scope="module", params=["", "f32"], ids=["default", "f32"])
def precision(request: pytest.FixtureRequest) -> str:
    """The device's default precision, then true f32: a check must hold at both."""
    return str(request.param)


@pytest.fixture(scope="module")
def detectors(model_dir: Path, precision: str) -> Iterator[dict[str, Detector]]:
    dets = {t: load_detector(t, model_dir, "CPU", precision=precision)
            for t in ("face", "people", "car", "object")}
    yield dets
    for d in dets.values():
        d.close()


def test_fetch_verified_and_idempotent(model_dir: Path) -> None:
    for name, digest in SHA256.items():
        assert sha256_file(model_dir / name) == digest
    labelmap = (model_dir / "object_detection_oidv4_labelmap.txt").read_text().splitlines()
    assert tuple(labelmap) == OIDV4_LABELS
    files = {*SHA256, *TFJS_MODELS}  # a converted IR: .bin pinned, .xml beside it
    stamps = {name: _stamp(model_dir / name) for name in files}
    again = fetch_models(model_dir, model_dir / ".cache")
    assert {p.name for p in again} == files
    # Idempotent: present, verified files are kept as they are (not extracted again).
    assert {name: _stamp(model_dir / name) for name in files} == stamps
    for spec in BUILTIN_MODELS.values():
        if not spec.quantized_from:  # INT8 variants are made by `ei models quantize`
            assert spec.path(model_dir).is_file()


def test_nanodet_conversion_is_reproducible(model_dir: Path, tmp_path: Path) -> None:
    # The real conversion (TensorFlow.js graph -> GraphDef -> OpenVINO IR), from the npm
    # tarball the session's fetch left in the cache, into an empty directory.
    convert_tfjs_models(tmp_path, model_dir / ".cache", ["nanodet-g-416.xml"])
    xml, weights = tmp_path / "nanodet-g-416.xml", tmp_path / "nanodet-g-416.bin"
    assert sha256_file(weights) == SHA256["nanodet-g-416.bin"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [weights.name, xml.name]  # no temp
    # The .xml names no temporary path. OpenVINO numbers the layers it names itself with a
    # counter per process (Convolution_90 in a fresh one), so compare without those numbers.
    assert _unnumbered(xml) == _unnumbered(model_dir / xml.name)
    stamp = _stamp(weights)
    assert [p.name for p in fetch_models(tmp_path, model_dir / ".cache")][-2:] == [
        xml.name, weights.name]
    assert _stamp(weights) == stamp  # present and verified: not converted again


def _unnumbered(xml: Path) -> str:
    return re.sub(r'name="([A-Za-z]+)_\d+"', r'name="\1_N"', xml.read_text())


def _stamp(path: Path) -> tuple[int, int]:
    """Inode and modification time: both change when a file is written anew."""
    st = path.stat()
    return st.st_ino, st.st_mtime_ns


def test_blazeface_finds_the_astronaut(
    detectors: dict[str, Detector], astronaut: np.ndarray, precision: str
) -> None:
    det = detectors["face"]
    assert det.model == "blazeface" and det.device == "CPU" and det.input_size == (128, 128)
    assert det.precision == (precision or det.precision)  # f32 asked for is f32 run
    faces = det.infer([astronaut])[0]
    assert len(faces) == 1, faces
    assert faces[0].label == "face" and faces[0].score >= 0.8
    assert box_iou(faces[0].box, FACE_REF) >= 0.5, faces[0].box


def test_face_box_is_in_frame_coordinates(
    detectors: dict[str, Detector], wide_astronaut: np.ndarray
) -> None:
    # The model sees a plain (squashing) resize of the whole 16:9 frame; boxes come back
    # normalised to the frame, so the reference maps through the 720-px inset at x=280.
    x1, y1, x2, y2 = FACE_REF
    ref = ((280 + x1 * 720) / 1280, y1, (280 + x2 * 720) / 1280, y2)
    faces = detectors["face"].infer([wide_astronaut])[0]
    assert faces and box_iou(faces[0].box, ref) >= 0.4, (faces, ref)


def test_full_range_face_model(model_dir: Path, astronaut: np.ndarray, precision: str) -> None:
    det = load_detector("face", model_dir, "CPU", model="blazeface-full", precision=precision)
    try:
        faces = det.infer([astronaut])[0]
    finally:
        det.close()
    assert det.input_size == (192, 192)
    assert len(faces) == 1 and box_iou(faces[0].box, FACE_REF) >= 0.5


def test_nanodet_finds_a_person(detectors: dict[str, Detector], astronaut: np.ndarray) -> None:
    people = detectors["people"].infer([astronaut])[0]
    assert detectors["people"].model == "nanodet-g-416"
    assert people and {d.label for d in people} == {"person"}
    best = max(people, key=lambda d: d.score)
    assert box_iou(best.box, PERSON_REF) >= 0.6, best.box
    assert detectors["people"].input_size == (416, 416)


def test_ssd_still_finds_a_person(
    model_dir: Path, astronaut: np.ndarray, precision: str
) -> None:
    det = load_detector("people", model_dir, "CPU", model="ssd-mobilenetv2-oidv4",
                        precision=precision)
    try:
        people = det.infer([astronaut])[0]
    finally:
        det.close()
    assert people and {d.label for d in people} == {"Person"}
    assert box_iou(max(people, key=lambda d: d.score).box, PERSON_REF) >= 0.6
    assert det.input_size == (300, 300)


def test_object_and_car_label_filters(
    detectors: dict[str, Detector], astronaut: np.ndarray
) -> None:
    coffee, camera = bgr(data.coffee()), cv2.cvtColor(data.camera(), cv2.COLOR_GRAY2BGR)
    objects = detectors["object"].infer([astronaut, coffee, camera])
    assert "person" in {d.label for d in objects[0]}
    assert "cup" in {d.label for d in objects[1]}
    assert "person" in {d.label for d in objects[2]}  # the cameraman
    cars = detectors["car"].infer([astronaut, coffee, camera])
    assert cars == [[], [], []]  # no person/cup leaks through the car filter
    people = detectors["people"].infer([coffee, camera])
    assert people[0] == [] and people[1]
    assert all(d.label == "person" for r in people for d in r)


def test_batch_returns_per_image_results_in_order(
    detectors: dict[str, Detector], astronaut: np.ndarray, wide_astronaut: np.ndarray
) -> None:
    det = detectors["object"]
    images = [
        astronaut,
        np.zeros((240, 320, 3), np.uint8),
        bgr(data.chelsea()),
        wide_astronaut,
        cv2.cvtColor(data.camera(), cv2.COLOR_GRAY2BGR),
        bgr(data.coffee()),
        astronaut[:, ::-1],  # not contiguous: must still work
    ] * 2
    singles = [det.infer([im])[0] for im in images]
    batch = det.infer(images)
    assert len(batch) == len(images)
    for got, want in zip(batch, singles, strict=True):
        assert [d.label for d in got] == [d.label for d in want]
        np.testing.assert_allclose([d.box for d in got], [d.box for d in want], atol=1e-5)
    assert batch[1] == []
    assert det.infer([]) == []


def test_unavailable_device_is_a_model_error(model_dir: Path) -> None:
    available = ov.Core().available_devices
    missing = next(d for d in ("NPU", "GPU", "GPU.7", "NPU.7") if d not in available)
    with pytest.raises(ModelError, match=rf"'{missing}' is not available.*available: CPU"):
        load_detector("face", model_dir, missing)


def test_missing_model_file_says_how_to_fetch(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match=r"download-models\.sh"):
        load_detector("face", tmp_path, "CPU")


def test_auto_device_reports_the_real_device(model_dir: Path, astronaut: np.ndarray) -> None:
    det = load_detector("face", model_dir, "AUTO")
    try:
        assert det.device and det.device != "AUTO"
        assert len(det.infer([astronaut])[0]) == 1
    finally:
        det.close()


def test_precision_f32_runs_exact_float_with_the_same_detections(
        model_dir: Path, astronaut: np.ndarray) -> None:
    exact = load_detector("face", model_dir, "CPU", precision="f32")
    default = load_detector("face", model_dir, "CPU")
    try:
        assert exact.precision == "f32"
        assert default.precision in ("f32", "bf16")  # bf16 on AVX-512 BF16 / AMX CPUs
        (face,) = exact.infer([astronaut])[0]
        (other,) = default.infer([astronaut])[0]
        assert box_iou(face.box, other.box) >= 0.9 and abs(face.score - other.score) < 0.05
    finally:
        exact.close()
        default.close()


def _write_omz_like_model(path: Path) -> None:
    """A tiny IR shaped like an OMZ SSD: NCHW BGR input, DetectionOutput-style [1,1,2,7].

    The confidence of row 0 is 0.9 * mean(channel 0) / 255, so a pure blue BGR image scores
    0.9 and a pure red one 0: this checks layout and colour order end to end.
    """
    param = ops.parameter([1, 3, 64, 64], np.float32, name="data")
    blue = ops.reduce_mean(ops.gather(param, ops.constant(np.array([0])), 1), [1, 2, 3], True)
    rows = np.array(
        [[0, 1, 0, 0.1, 0.2, 0.5, 0.6], [-1, 0, 0, 0, 0, 0, 0]], dtype=np.float32
    ).reshape(1, 1, 2, 7)
    mask = np.zeros_like(rows)
    mask[0, 0, 0, 2] = 0.9 / 255
    out = ops.add(ops.constant(rows), ops.multiply(ops.constant(mask), blue))
    ov.save_model(ov.Model([out], [param], "omz_like"), str(path), compress_to_fp16=False)


def test_user_omz_model(tmp_path: Path) -> None:
    _write_omz_like_model(tmp_path / "my-person-detector.xml")
    (tmp_path / "my-person-detector.labels").write_text("background\nperson\n")
    det = load_detector("people", tmp_path, "CPU", model="my-person-detector")
    try:
        blue = np.zeros((480, 640, 3), np.uint8)
        blue[..., 0] = 255
        red = np.zeros((480, 640, 3), np.uint8)
        red[..., 2] = 255
        got_blue, got_red = det.infer([blue, red])
    finally:
        det.close()
    assert det.model == "my-person-detector" and det.input_size == (64, 64)
    assert got_red == []
    assert len(got_blue) == 1
    assert isinstance(got_blue[0], Detection) and got_blue[0].label == "person"
    assert got_blue[0].score == pytest.approx(0.9, abs=0.01)
    np.testing.assert_allclose(got_blue[0].box, (0.1, 0.2, 0.5, 0.6), atol=1e-6)


def test_closed_detector_refuses_work(model_dir: Path, astronaut: np.ndarray) -> None:
    det = load_detector("face", model_dir, "CPU")
    det.close()
    det.close()  # idempotent
    with pytest.raises(ModelError, match="closed"):
        det.infer([astronaut])
