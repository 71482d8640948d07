"""INT8 variants of the built-in models, made locally with NNCF post-training quantization.

No INT8 model can be downloaded here, so each is made from its FP32 built-in (the fetched
``.tflite``) and a calibration set of frames from the sample videos, pre-processed exactly as
the worker feeds the model (:func:`.preprocess.network_input`). The result is an OpenVINO IR,
``<model_dir>/<name>-int8.xml`` + ``.bin``, selected by the registry name ``<name>-int8``.

Provenance (source SHA-256, NNCF/OpenVINO versions, calibration frames, recipe) is written into
the IR's own ``rt_info`` under ``elastic_inference``, so it travels with the model and cannot
drift from it (a ``<name>-int8.json`` beside it would be read as a user-model sidecar). A
rerun with the same source and recipe is a no-op. ``nncf`` is imported only when a model has to
be made.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import time
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from ..core.errors import ModelError
from .fetch import sha256_file
from .models import BUILTIN_MODELS, INT8_SUFFIX, ModelSpec
from .preprocess import network_input, resize_to_input

log = logging.getLogger(__name__)

SAMPLE_VIDEOS: tuple[str, ...] = ("vtest.avi", "Megamind.avi")
DEFAULT_MODELS: tuple[str, ...] = ("ssd-mobilenetv2-oidv4", "blazeface")
RT_INFO_KEY = "elastic_inference"
#: Bump when the quantization settings change, so existing INT8 files are remade.
RECIPE = "2:mixed,first-conv-fp32,fp32-weights,bias-correction"
#: Calibration frames by default: 600 agreed better with FP32 than 300 (doc/models.md).
CALIBRATION_FRAMES = 600
_EXTRA_HINT = "pip install 'elastic-inference[quantize]' (NNCF)"


def int8_pair(name: str) -> tuple[ModelSpec, ModelSpec]:
    """(FP32 built-in, its INT8 variant) for either name, ``ssd-x`` or ``ssd-x-int8``."""
    base = name[: -len(INT8_SUFFIX)] if name.endswith(INT8_SUFFIX) else name
    fp32 = BUILTIN_MODELS.get(base)
    if fp32 is None or fp32.quantized_from or not fp32.int8:
        known = ", ".join(n for n, s in BUILTIN_MODELS.items() if s.int8)
        what = "has no INT8 variant" if fp32 and not fp32.quantized_from else \
            "is not a built-in FP32 model"
        raise ModelError(f"cannot quantize {name!r}: {what} (known: {known})")
    return fp32, BUILTIN_MODELS[f"{base}{INT8_SUFFIX}"]


def read_provenance(xml: Path) -> dict[str, str]:
    """The ``rt_info`` entries this module wrote into an INT8 IR; empty if none or unreadable."""
    try:
        root = ET.parse(xml).getroot()
    except (OSError, ET.ParseError):
        return {}
    node = root.find(f"rt_info/{RT_INFO_KEY}")
    if node is None:
        return {}
    return {child.tag: child.get("value", "") for child in node}


def _is_current(xml: Path, source_sha256: str) -> bool:
    bin_path = xml.with_suffix(".bin")
    if not (xml.is_file() and bin_path.is_file() and bin_path.stat().st_size > 0):
        return False
    info = read_provenance(xml)
    return info.get("source_sha256") == source_sha256 and info.get("recipe") == RECIPE


def calibration_frames(sample_dir: Path, spec: ModelSpec, frames: int) -> list[np.ndarray]:
    """``frames`` frames spread evenly over every sample video, resized to the model input.

    Each video gets an equal share, taken at evenly spaced positions from first to last frame
    (so the set covers both videos, not just their openings). Frames are kept as uint8 at the
    model size; the float conversion happens per frame while NNCF iterates (a 300-frame SSD
    set is 81 MB instead of 324 MB).
    """
    videos = [Path(sample_dir) / n for n in SAMPLE_VIDEOS]
    present = [v for v in videos if v.is_file()]
    if not present:
        raise ModelError(
            f"no sample video ({', '.join(SAMPLE_VIDEOS)}) in {sample_dir} to calibrate with; "
            "run tools/download-samples.sh"
        )
    for missing in set(videos) - set(present):
        log.warning("sample video %s is missing; calibrating without it", missing)
    out: list[np.ndarray] = []
    for i, video in enumerate(present):
        share = frames // len(present) + (1 if i < frames % len(present) else 0)
        out += _video_frames(video, share, spec.input_w, spec.input_h)
    if not out:
        raise ModelError(f"could not read any frame from {', '.join(map(str, present))}")
    return out


def _video_frames(video: Path, count: int, w: int, h: int) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(video))
    if not cap.isOpened():
        raise ModelError(f"cannot open sample video {video}")
    try:
        total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
        if count <= 0:
            return []
        if total > 0:
            wanted = set(np.linspace(0, total - 1, min(count, total)).round().astype(int).tolist())
        else:  # unknown length: the first ``count`` frames
            wanted = set(range(count))
        last = max(wanted)
        out: list[np.ndarray] = []
        for index in range(last + 1):
            if not cap.grab():
                break
            if index in wanted:
                ok, frame = cap.retrieve()
                if ok and frame is not None:
                    out.append(resize_to_input(frame, w, h).copy())
        log.info("calibration: %d frames from %s (of %d)", len(out), video.name, total)
        return out
    finally:
        cap.release()


def _import_nncf() -> Any:
    try:
        import nncf
    except ImportError as exc:
        raise ModelError(f"INT8 quantization needs NNCF: {_EXTRA_HINT} ({exc})") from exc
    return nncf


def quiet_nncf() -> None:
    """Lower NNCF's logger (set to INFO when nncf is imported) to warnings; for the CLI."""
    try:
        _import_nncf().set_log_level(logging.WARNING)
    except ModelError:
        pass  # quantize() says how to install it


def _quantize_model(
    nncf: Any, source: Path, spec: ModelSpec, calibration: Sequence[np.ndarray]
) -> Any:
    """Read the FP32 model and run NNCF post-training quantization on it."""
    import openvino as ov

    try:
        net = ov.Core().read_model(str(source))
    except RuntimeError as exc:
        raise ModelError(f"OpenVINO cannot read {source}: {exc}") from exc
    net = _decompress_weights(net)
    dataset = nncf.Dataset(list(calibration), lambda frame: network_input(frame, spec))
    # MIXED (symmetric weights, asymmetric activations) matched FP32 best on the sample frames;
    # PERFORMANCE was slightly worse at the same speed. The first convolution stays in float:
    # it has 3 input channels (little compute), and on CPU NNCF's overflow fix would cut its
    # weights to 7 bits; keeping it cut the SSD's logit error by ~10% and its box error by ~15%
    # at no measurable cost in throughput (doc/models.md, "INT8 variants").
    first = _first_convolution(net)
    quantized = nncf.quantize(
        net,
        dataset,
        preset=nncf.QuantizationPreset.MIXED,
        target_device=nncf.TargetDevice.CPU,
        subset_size=len(calibration),
        ignored_scope=nncf.IgnoredScope(names=[first] if first else []),
    )
    return quantized


def _decompress_weights(net: Any) -> Any:
    """Replace FP16 constants (``Constant -> Convert``, as FP16 ``.tflite`` files load) by FP32
    ones and fold what they feed, so each convolution's bias becomes a plain constant ``Add``.

    Without it NNCF sees no bias behind ``Convert -> Unsqueeze`` and silently skips bias
    correction: the SSD's INT8 scores then ran 0.002 low on average, and with a third of its
    detections within 0.01 of the threshold, INT8 lost 5 of 91 FP32 people on an AMX CPU
    (0.945; doc/models.md). The values are unchanged (FP16 is exact in FP32).
    """
    import openvino as ov
    from openvino import opset13
    from openvino.passes import ConstantFolding, Manager

    for op in net.get_ordered_ops():
        if op.get_type_name() != "Convert":
            continue
        source = op.input_value(0).get_node()
        if (source.get_type_name() == "Constant" and source.get_element_type() == ov.Type.f16
                and op.get_output_element_type(0) == ov.Type.f32):
            weights = opset13.constant(source.get_data().astype(np.float32))
            weights.set_friendly_name(source.get_friendly_name())
            op.output(0).replace(weights.output(0))
    passes = Manager()
    passes.register_pass(ConstantFolding())
    passes.run_passes(net)
    return net


def _first_convolution(net: Any) -> str | None:
    """Friendly name of the first (input) convolution in topological order, if any."""
    for op in net.get_ordered_ops():
        if op.get_type_name() in ("Convolution", "GroupConvolution"):
            return str(op.get_friendly_name())
    return None


def quantize(
    spec_name: str,
    model_dir: Path,
    sample_dir: Path,
    frames: int = CALIBRATION_FRAMES,
    force: bool = False,
) -> Path:
    """Make ``<model_dir>/<name>-int8.xml`` (+ ``.bin``) from a built-in FP32 model.

    ``spec_name`` is the FP32 name or its ``-int8`` variant. Skipped (returns the existing path)
    when the IR is there and was made from the same source file by the same recipe, unless
    ``force``. Raises :class:`ModelError` when the source model, the sample videos or NNCF are
    missing. The IR is written to a temporary directory and moved in, the old ``.xml`` removed
    first and the new one last, so an interrupted run never leaves a half-written or mismatched
    model under the real name (only a missing one, which the next run makes).
    """
    if frames < 1:
        raise ModelError(f"calibration needs at least one frame, got {frames}")
    fp32, int8 = int8_pair(spec_name)
    model_dir = Path(model_dir)
    source = fp32.path(model_dir)
    if not source.is_file():
        raise ModelError(
            f"cannot quantize {fp32.name!r}: {source} is missing; run `ei models fetch` first"
        )
    target = int8.path(model_dir)
    digest = sha256_file(source)
    if not force and _is_current(target, digest):
        log.info("%s is up to date (made from %s); skipped", target, source.name)
        return target

    nncf = _import_nncf()
    import openvino as ov

    start = time.monotonic()
    calibration = calibration_frames(Path(sample_dir), fp32, frames)
    quantized = _quantize_model(nncf, source, fp32, calibration)
    provenance = {
        "quantized_from": fp32.name,
        "source_file": source.name,
        "source_sha256": digest,
        "nncf_version": str(nncf.__version__),
        "openvino_version": ov.get_version(),
        "calibration_frames": str(len(calibration)),
        "calibration_videos": ",".join(
            n for n in SAMPLE_VIDEOS if (Path(sample_dir) / n).is_file()
        ),
        "recipe": RECIPE,
    }
    for key, value in provenance.items():
        quantized.set_rt_info(value, [RT_INFO_KEY, key])
    tmp = Path(tempfile.mkdtemp(dir=model_dir, prefix=f".{int8.name}."))
    try:
        ov.save_model(quantized, str(tmp / target.name), compress_to_fp16=False)
        target.unlink(missing_ok=True)  # never pair an old .xml with the new .bin
        for produced in (tmp / target.name).with_suffix(".bin"), tmp / target.name:
            os.chmod(produced, 0o644)
            os.replace(produced, model_dir / produced.name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    log.info(
        "made %s from %s with %d calibration frames in %.1f s",
        target,
        source.name,
        len(calibration),
        time.monotonic() - start,
    )
    return target
