"""Model registry: which model file serves which inference type, and how to read its outputs.

Built-in models come from registry packages (see :mod:`.fetch`); a user's own models are
files in the model directory (or any path) with an optional JSON sidecar, see
:func:`load_user_model` and doc/models.md. Pure Python: importing this never imports openvino.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Literal

from ..core.errors import ModelError
from .postprocess import (
    AnchorOptions,
    DecodeOptions,
    DetectionOutputPostprocessor,
    SsdPostprocessor,
    generate_anchors,
)

log = logging.getLogger(__name__)

PostprocessKind = Literal["mediapipe-ssd", "omz-ssd"]
POSTPROCESS_KINDS: tuple[str, ...] = ("mediapipe-ssd", "omz-ssd")
MODEL_SUFFIXES: tuple[str, ...] = (".xml", ".onnx", ".tflite")
LabelFilter = frozenset[str] | None

# Label map packed in @mediapipe/objectron (bytes 0..184 of objectron_solution_packed_assets.data,
# checked by SHA-256 in fetch.py). Index 0 is the SSD background class.
OIDV4_LABELS: tuple[str, ...] = (
    "???", "Bicycle", "Boot", "Laptop", "Person", "Chair", "Cattle", "Desk", "Cat",
    "Computer mouse", "Computer monitor", "Box", "Mug", "Coffee cup", "Stationary bicycle",
    "Table", "Bottle", "High heels", "Vehicle", "Footwear", "Dog", "Book", "Camera", "Car",
)  # fmt: skip


@dataclass(frozen=True)
class ModelSpec:
    """Everything the runtime and post-processor need to know about one model.

    ``file`` is relative to the model directory (an absolute path for a user model elsewhere).
    ``input_w``/``input_h`` of 0 mean "read them from the model". ``color``/``mean``/``scale``
    describe the input the network expects (``(pixel - mean) / scale``); the runtime folds them
    into the compiled model so the host only resizes. ``quantized_from`` names the FP32 built-in
    an INT8 variant is made from locally (``ei models quantize``; nothing to download).
    """

    name: str
    file: str
    postprocess: PostprocessKind
    labels: tuple[str, ...]
    threshold: float
    iou_threshold: float = 0.5
    input_w: int = 0
    input_h: int = 0
    anchors: AnchorOptions | None = None
    decode: DecodeOptions | None = None
    ignore_classes: tuple[int, ...] = ()
    color: Literal["RGB", "BGR"] = "RGB"
    mean: float = 0.0
    scale: float = 1.0
    max_detections: int = 100
    source: str = ""
    optional: bool = False
    builtin: bool = True
    extra_files: tuple[str, ...] = field(default=())
    quantized_from: str = ""

    @property
    def precision(self) -> str:
        """``INT8`` for a quantized variant, else ``FP32`` (the network's, not the execution
        precision: OpenVINO runs FP32 networks in BF16 on CPUs that have it)."""
        return "INT8" if self.quantized_from else "FP32"

    def path(self, model_dir: Path) -> Path:
        """Absolute location of the model file (``file`` may itself be absolute)."""
        return Path(model_dir) / self.file

    def make_postprocessor(
        self, label_filter: LabelFilter = None
    ) -> SsdPostprocessor | DetectionOutputPostprocessor:
        """Build the post-processor once per detector (anchors are precomputed here)."""
        if self.postprocess == "omz-ssd":
            return DetectionOutputPostprocessor(self.labels, self.threshold, label_filter)
        if self.anchors is None or self.decode is None:
            raise ModelError(f"model {self.name!r}: mediapipe-ssd needs anchors and decode options")
        return SsdPostprocessor(
            generate_anchors(self.anchors),
            self.decode,
            self.labels,
            self.threshold,
            self.iou_threshold,
            ignore_classes=self.ignore_classes,
            label_filter=label_filter,
            max_detections=self.max_detections,
        )


def _mediapipe_face_anchors(size: int, strides: tuple[int, ...], interp: float) -> AnchorOptions:
    return AnchorOptions(
        num_layers=len(strides),
        min_scale=0.1484375,
        max_scale=0.75,
        input_w=size,
        input_h=size,
        strides=strides,
        aspect_ratios=(1.0,),
        interpolated_scale_aspect_ratio=interp,
        fixed_anchor_size=True,
    )


def _xywh(size: int) -> DecodeOptions:
    s = float(size)
    return DecodeOptions(order="xywh", x_scale=s, y_scale=s, w_scale=s, h_scale=s)


_MP = "PyPI mediapipe==0.10.14 wheel"
BUILTIN_MODELS: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in (
        ModelSpec(
            name="blazeface",
            file="face_detection_short_range.tflite",
            postprocess="mediapipe-ssd",
            labels=("face",),
            threshold=0.6,
            iou_threshold=0.3,
            input_w=128,
            input_h=128,
            anchors=_mediapipe_face_anchors(128, (8, 16, 16, 16), 1.0),
            decode=_xywh(128),
            mean=127.5,
            scale=127.5,
            source=f"{_MP}: mediapipe/modules/face_detection/face_detection_short_range.tflite",
        ),
        ModelSpec(
            name="blazeface-full",
            file="face_detection_full_range_sparse.tflite",
            postprocess="mediapipe-ssd",
            labels=("face",),
            threshold=0.6,
            iou_threshold=0.3,
            input_w=192,
            input_h=192,
            anchors=_mediapipe_face_anchors(192, (4,), 0.0),
            decode=_xywh(192),
            mean=127.5,
            scale=127.5,
            source=(
                f"{_MP}: mediapipe/modules/face_detection/face_detection_full_range_sparse.tflite"
            ),
            optional=True,
        ),
        ModelSpec(
            name="ssd-mobilenetv2-oidv4",
            file="object_detection_ssd_mobilenetv2_oidv4_fp16.tflite",
            postprocess="mediapipe-ssd",
            labels=OIDV4_LABELS,
            threshold=0.5,
            iou_threshold=0.5,
            input_w=300,
            input_h=300,
            anchors=AnchorOptions(
                num_layers=6,
                min_scale=0.2,
                max_scale=0.95,
                input_w=300,
                input_h=300,
                strides=(16, 32, 64, 128, 256, 512),
                aspect_ratios=(1.0, 2.0, 0.5, 3.0, 0.3333),
                reduce_boxes_in_lowest_layer=True,
                interpolated_scale_aspect_ratio=1.0,
            ),
            decode=DecodeOptions(
                order="yxhw", x_scale=10.0, y_scale=10.0, w_scale=5.0, h_scale=5.0, exp_size=True
            ),
            ignore_classes=(0,),
            mean=127.5,
            scale=127.5,
            source=(
                "npm @mediapipe/objectron@0.4.1675468480: "
                "objectron_solution_packed_assets.data bytes 184..9987912"
            ),
            extra_files=("object_detection_oidv4_labelmap.txt",),
        ),
        ModelSpec(
            name="blazepose-detector",
            file="pose_detection.tflite",
            postprocess="mediapipe-ssd",
            labels=("person",),
            threshold=0.6,
            iou_threshold=0.3,
            input_w=224,
            input_h=224,
            anchors=_mediapipe_face_anchors(224, (8, 16, 32, 32, 32), 1.0),
            decode=replace(_xywh(224), keypoint_box=(0, 1)),
            mean=127.5,
            scale=127.5,
            source=f"{_MP}: mediapipe/modules/pose_detection/pose_detection.tflite",
            optional=True,
        ),
    )
}


INT8_SUFFIX = "-int8"


def int8_variant(spec: ModelSpec) -> ModelSpec:
    """The INT8 twin of a built-in FP32 model: same decoding, an OpenVINO IR made locally."""
    name = f"{spec.name}{INT8_SUFFIX}"
    return replace(
        spec,
        name=name,
        file=f"{name}.xml",
        quantized_from=spec.name,
        source=f"NNCF post-training INT8 quantization of {spec.name} ({spec.file})",
        extra_files=(),
    )


# Every FP32 built-in gets an INT8 variant named ``<name>-int8`` (files ``<name>-int8.xml/.bin``).
BUILTIN_MODELS.update(
    {v.name: v for v in (int8_variant(s) for s in list(BUILTIN_MODELS.values()))}
)


@dataclass(frozen=True)
class InferType:
    """An inference type (the ``type`` of a frame queue): default model + labels it keeps."""

    name: str
    model: str
    labels: tuple[str, ...] | None
    description: str


INFER_TYPES: dict[str, InferType] = {
    t.name: t
    for t in (
        InferType("face", "blazeface", ("face",), "faces (BlazeFace short range)"),
        InferType("people", "ssd-mobilenetv2-oidv4", ("Person",), "people (SSD OIDv4, Person)"),
        InferType("car", "ssd-mobilenetv2-oidv4", ("Car", "Vehicle"), "cars and vehicles"),
        InferType("object", "ssd-mobilenetv2-oidv4", None, "all 23 OIDv4 object classes"),
    )
}


def _looks_like_path(name: str) -> bool:
    return "/" in name or "\\" in name or Path(name).suffix.lower() in (*MODEL_SUFFIXES, ".json")


def _read_labels(path: Path) -> tuple[str, ...]:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise ModelError(f"cannot read labels file {path}: {exc}") from exc
    return tuple(line.strip() for line in lines if line.strip())


_SIDE_KEYS = {f.name for f in fields(ModelSpec)} - {
    "name", "builtin", "optional", "source", "quantized_from"
}


def _spec_from_sidecar(
    name: str, model_file: Path, side: Mapping[str, Any], base: Path
) -> ModelSpec:
    unknown = set(side) - _SIDE_KEYS - {"labels_file"}
    if unknown:
        raise ModelError(f"model {name!r}: unknown keys in JSON sidecar: {sorted(unknown)}")
    kw: dict[str, Any] = {k: v for k, v in side.items() if k not in ("labels_file", "file")}
    if "labels_file" in side:
        kw["labels"] = _read_labels(base / str(side["labels_file"]))
    elif "labels" in kw:
        kw["labels"] = tuple(str(x) for x in kw["labels"])
    kw.setdefault("postprocess", "omz-ssd")
    if kw["postprocess"] not in POSTPROCESS_KINDS:
        raise ModelError(
            f"model {name!r}: postprocess {kw['postprocess']!r} is not one of {POSTPROCESS_KINDS}"
        )
    if kw["postprocess"] == "omz-ssd":
        # OMZ models take BGR 0..255 unless the sidecar says otherwise.
        kw.setdefault("color", "BGR")
    try:
        if isinstance(kw.get("anchors"), Mapping):
            a = dict(kw["anchors"])
            for key in ("strides", "aspect_ratios"):
                if key in a:
                    a[key] = tuple(a[key])
            kw["anchors"] = AnchorOptions(**a)
        if isinstance(kw.get("decode"), Mapping):
            kw["decode"] = DecodeOptions(**kw["decode"])
        if "ignore_classes" in kw:
            kw["ignore_classes"] = tuple(int(x) for x in kw["ignore_classes"])
        kw.setdefault("labels", ())
        kw.setdefault("threshold", 0.5)
        return ModelSpec(name=name, file=str(model_file), builtin=False, source="user", **kw)
    except (TypeError, ValueError) as exc:
        raise ModelError(f"model {name!r}: invalid JSON sidecar: {exc}") from exc


def load_user_model(model: str, model_dir: Path | None = None) -> ModelSpec:
    """A user's own model, found by path or by name in ``model_dir``.

    ``model`` is a path to ``X.xml`` (with ``X.bin``), ``X.onnx``, ``X.tflite`` or ``X.json``, or
    just ``X`` when those files sit in ``model_dir``. Next to the model, an optional ``X.json``
    sidecar holds :class:`ModelSpec` fields (``postprocess``, ``labels``/``labels_file``,
    ``threshold``, ``color``, ``mean``, ``scale``, ...) and an optional ``X.labels`` holds one
    label per line (line number = class id). Without a sidecar the model is taken to be an OMZ
    SSD (``DetectionOutput`` ``[1,1,N,7]``, BGR 0..255 input), the common case.
    """
    candidates: list[Path] = []
    if _looks_like_path(model):
        p = Path(model).expanduser()
        candidates.append(p)
        if not p.is_absolute() and model_dir is not None:
            candidates.append(Path(model_dir) / p)
    elif model_dir is not None:
        candidates += [Path(model_dir) / f"{model}{s}" for s in (".json", *MODEL_SUFFIXES)]
    found = next((c for c in candidates if c.is_file()), None)
    if found is None:
        raise ModelError(
            f"unknown model {model!r}: not a built-in model ({', '.join(BUILTIN_MODELS)}) and no "
            f"model file found (looked for {', '.join(str(c) for c in candidates) or 'nothing'}); "
            "run tools/download-models.sh (or `ei models fetch`) to fetch models, "
            "`-u DIR` to add your own"
        )
    name, base = found.stem, found.parent
    sidecar_path = found if found.suffix.lower() == ".json" else base / f"{name}.json"
    side: dict[str, Any] = {}
    if sidecar_path.is_file():
        try:
            loaded = json.loads(sidecar_path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ModelError(f"cannot read model sidecar {sidecar_path}: {exc}") from exc
        if not isinstance(loaded, dict):
            raise ModelError(f"model sidecar {sidecar_path} must hold a JSON object")
        side = loaded
    if found.suffix.lower() == ".json":
        if "file" in side:
            model_file = base / str(side["file"])
        else:
            model_file = next(
                (base / f"{name}{s}" for s in MODEL_SUFFIXES if (base / f"{name}{s}").is_file()),
                base / f"{name}.xml",
            )
    else:
        model_file = found
    if "labels" not in side and "labels_file" not in side and (base / f"{name}.labels").is_file():
        side = {**side, "labels_file": f"{name}.labels"}
    return _spec_from_sidecar(name, model_file.resolve(), side, base)


def get_model(name: str, model_dir: Path | None = None) -> ModelSpec:
    """A built-in model by registry name, else a user model (see :func:`load_user_model`).

    With ``model_dir``, a missing INT8 variant is reported here: unlike the FP32 files it is
    made locally, so the runtime's "download the models" hint would send the user astray.
    """
    spec = BUILTIN_MODELS.get(name)
    if spec is None:
        return load_user_model(name, model_dir)
    if spec.quantized_from and model_dir is not None:
        path = spec.path(Path(model_dir))
        if not (path.is_file() and path.with_suffix(".bin").is_file()):
            raise ModelError(
                f"INT8 model {name!r} is not in {model_dir} (no {path.name} + .bin): it is made "
                f"from {spec.quantized_from!r} on this machine; run "
                f"`ei models quantize -d {model_dir} -m {name}` (needs the `quantize` extra: "
                "pip install 'elastic-inference[quantize]')"
            )
    return spec


def resolve(
    infer_type: str,
    model: str | None = None,
    model_dir: Path | None = None,
    threshold: float | None = None,
) -> tuple[ModelSpec, LabelFilter]:
    """(inference type, optional model override) -> (model spec, labels to keep or None=all).

    Type labels match case-insensitively and are returned in the model's own spelling. A
    built-in model with none of the type's labels is a configuration error; a user model with
    none keeps all its labels (we cannot know its naming) and a warning is logged. A type not
    in :data:`INFER_TYPES` is allowed only with an explicit model, and keeps all labels.
    """
    itype = INFER_TYPES.get(infer_type)
    if itype is None and model is None:
        raise ModelError(
            f"unknown inference type {infer_type!r}: known types are {', '.join(INFER_TYPES)} "
            "(any other type needs an explicit model)"
        )
    spec = get_model(model if model is not None else itype.model if itype else "", model_dir)
    if threshold is not None:
        if not 0.0 < threshold < 1.0:
            raise ModelError(f"score threshold must be between 0 and 1, got {threshold}")
        spec = replace(spec, threshold=threshold)
    if itype is None or itype.labels is None:
        return spec, None
    wanted = {x.casefold() for x in itype.labels}
    keep = frozenset(lab for lab in spec.labels if lab.casefold() in wanted)
    if keep:
        return spec, keep
    if spec.builtin:
        raise ModelError(
            f"model {spec.name!r} has no label for inference type {infer_type!r} "
            f"(wants {', '.join(itype.labels)})"
        )
    log.warning(
        "user model %s has none of the labels %s of type %s; keeping all its labels",
        spec.name,
        itype.labels,
        infer_type,
    )
    return spec, None
