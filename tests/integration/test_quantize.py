"""INT8 variants made with NNCF from the real models and sample videos.

Agreement with FP32 is measured on the INT8 SSD as shipped (``models/``, made by ``make`` with
the default recipe; remade here if stale), as in doc/models.md: the share of FP32 detections
that have an INT8 partner with the same label and IoU >= 0.5, over 120 frames, at the device's
default precision (BF16 for the float parts on AVX-512 BF16 and AMX CPUs) and at true f32.
The file and provenance tests quantize into a temporary directory with 60 frames each, to keep
the module fast.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest
from skimage import data

from elastic_inference.core.errors import ModelError
from elastic_inference.core.result import Box, box_iou, count_matched
from elastic_inference.engine.detector import Detector
from elastic_inference.engine.factory import load_detector
from elastic_inference.engine.fetch import sha256_file
from elastic_inference.engine.models import BUILTIN_MODELS
from elastic_inference.engine.quantize import RECIPE, quantize, read_provenance

pytestmark = pytest.mark.integration

SSD, FACE = "ssd-mobilenetv2-oidv4", "blazeface"
FACE_REF: Box = (0.34, 0.12, 0.54, 0.36)  # the astronaut's face, as in test_models.py


@pytest.fixture(scope="module")
def int8_dir(
    model_dir: Path, sample_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """FP32 sources copied into a fresh directory, with the SSD and BlazeFace quantized there."""
    target = tmp_path_factory.mktemp("int8-models")
    for name in (SSD, FACE):
        spec = BUILTIN_MODELS[name]
        for file in (spec.file, *spec.extra_files):
            shutil.copy2(model_dir / file, target / file)
    quantize(SSD, target, sample_dir, frames=60)
    quantize(FACE, target, sample_dir, frames=60)
    return target


AGREEMENT_FRAMES = 120


@pytest.fixture(scope="module")
def vtest_frames(sample_dir: Path) -> list[np.ndarray]:
    """120 frames spread over vtest.avi, scaled to 1280x720 as a stream would send them."""
    cap = cv2.VideoCapture(str(sample_dir / "vtest.avi"))
    total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
    wanted = set(np.linspace(0, total - 1, AGREEMENT_FRAMES).round().astype(int).tolist())
    frames: list[np.ndarray] = []
    for index in range(max(wanted) + 1):
        ok, frame = cap.read()
        if not ok:
            break
        if index in wanted:
            frames.append(cv2.resize(frame, (1280, 720)))
    cap.release()
    assert len(frames) == AGREEMENT_FRAMES
    return frames


@pytest.fixture(scope="module")
def shipped_int8(model_dir: Path, sample_dir: Path) -> Path:
    """The model directory with the SSD's INT8 variant as ``make`` ships it (a no-op if current)."""
    quantize(SSD, model_dir, sample_dir)
    return model_dir


@pytest.fixture(scope="module", params=["", "f32"], ids=["default-precision", "f32"])
def people(request: pytest.FixtureRequest, shipped_int8: Path
           ) -> Iterator[tuple[Detector, Detector]]:
    """FP32 and INT8 people detectors, both compiled at the same inference precision."""
    fp32 = load_detector("people", shipped_int8, "CPU", model=SSD, precision=request.param)
    int8 = load_detector("people", shipped_int8, "CPU", model=f"{SSD}-int8",
                         precision=request.param)
    yield fp32, int8
    fp32.close()
    int8.close()


def test_int8_files_and_provenance(int8_dir: Path, model_dir: Path) -> None:
    for name in (SSD, FACE):
        xml = int8_dir / f"{name}-int8.xml"
        assert xml.is_file() and xml.with_suffix(".bin").stat().st_size > 0
        info = read_provenance(xml)
        source = BUILTIN_MODELS[name].file
        assert info["quantized_from"] == name and info["source_file"] == source
        assert info["source_sha256"] == sha256_file(model_dir / source)
        assert info["recipe"] == RECIPE and info["nncf_version"]
        assert info["calibration_videos"] == "vtest.avi,Megamind.avi"
    for name in (SSD, FACE):
        assert read_provenance(int8_dir / f"{name}-int8.xml")["calibration_frames"] == "60"
    # Nothing that the user-model lookup would take for a sidecar or another model.
    assert not list(int8_dir.glob("*.json")) and not list(int8_dir.glob(".*"))


def test_int8_ssd_finds_people_and_agrees_with_fp32(
    people: tuple[Detector, Detector], vtest_frames: list[np.ndarray], shipped_int8: Path
) -> None:
    fp32, int8 = people
    assert int8.model == f"{SSD}-int8" and int8.input_size == (300, 300)
    assert read_provenance(shipped_int8 / f"{SSD}-int8.xml")["recipe"] == RECIPE
    assert fp32.precision == int8.precision
    want = fp32.infer(vtest_frames)
    got = int8.infer(vtest_frames)
    assert all(d.label == "Person" for frame in got for d in frame)
    assert sum(1 for frame in got if frame) >= 0.9 * len(got), [len(f) for f in got]
    total, found = sum(len(f) for f in want), sum(len(f) for f in got)
    matched = sum(count_matched(w, g) for w, g in zip(want, got, strict=True))
    kept = sum(count_matched(g, w) for w, g in zip(want, got, strict=True))
    assert total >= 3 * len(want), total  # about 3.5 people per frame
    figures = {"precision": fp32.precision, "fp32": total, "int8": found, "matched": matched,
               "int8_matched_by_fp32": kept}
    assert matched / total >= 0.95, figures


def test_int8_blazeface_finds_the_astronaut(int8_dir: Path) -> None:
    det = load_detector("face", int8_dir, "CPU", model=f"{FACE}-int8")
    try:
        faces = det.infer([np.ascontiguousarray(cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR))])
    finally:
        det.close()
    assert len(faces[0]) == 1 and box_iou(faces[0][0].box, FACE_REF) >= 0.5, faces


def test_second_call_is_a_no_op_unless_forced(int8_dir: Path, sample_dir: Path) -> None:
    xml = int8_dir / f"{FACE}-int8.xml"
    before = (xml.stat().st_mtime_ns, xml.with_suffix(".bin").stat().st_mtime_ns)
    start = time.monotonic()
    assert quantize(FACE, int8_dir, sample_dir, frames=60) == xml
    assert quantize(f"{SSD}-int8", int8_dir, sample_dir) == int8_dir / f"{SSD}-int8.xml"
    assert time.monotonic() - start < 2.0
    assert (xml.stat().st_mtime_ns, xml.with_suffix(".bin").stat().st_mtime_ns) == before
    assert quantize(FACE, int8_dir, sample_dir, frames=60, force=True) == xml
    assert xml.with_suffix(".bin").stat().st_mtime_ns != before[1]  # remade, same recipe
    assert not list(int8_dir.glob(".*"))  # the temporary directory is gone


def test_missing_int8_model_says_run_quantize(model_dir: Path, tmp_path: Path) -> None:
    shutil.copy2(model_dir / BUILTIN_MODELS[FACE].file, tmp_path)
    with pytest.raises(ModelError, match="ei models quantize"):
        load_detector("face", tmp_path, "CPU", model=f"{FACE}-int8")
