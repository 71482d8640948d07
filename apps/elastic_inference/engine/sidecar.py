"""A user model's JSON sidecar (``model.onnx`` + ``model.json``): checked key by key.

Every key has one parser that checks its JSON type and range and turns it into the value a
:class:`~.models.ModelSpec` field holds, so an unknown key or a wrong type is refused naming
the key (a typo must not pass silently and leave a default in force). Keys the sidecar does
not give stay unset: the model's recognised layout supplies input defaults (colour order,
mean, scale) later, in the runtime. Pure Python; no openvino.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import fields
from pathlib import Path
from typing import Any

from ..core.errors import ModelError
from .layouts.base import LayoutOptions
from .layouts.registry import LAYOUT_NAMES
from .postprocess import AnchorOptions, DecodeOptions

Parser = Callable[[Any, Path], Any]


class _Bad(ValueError):
    """A value of the wrong type or range; the message says what was expected."""


def read_labels(path: Path) -> tuple[str, ...]:
    """One label per line, line n = class id n (blank lines skipped)."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise ModelError(f"cannot read labels file {path}: {exc}") from exc
    return tuple(line.strip() for line in lines if line.strip())


def _number(v: Any) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise _Bad(f"a number, not {json.dumps(v)}")
    return float(v)


def _text(v: Any, _: Path = Path()) -> str:
    if not isinstance(v, str) or not v:
        raise _Bad(f"a non-empty string, not {json.dumps(v)}")
    return v


def _choice(*allowed: str) -> Parser:
    def parse(v: Any, _: Path) -> str:
        if v not in allowed:
            raise _Bad(f"one of {', '.join(map(json.dumps, allowed))}, not {json.dumps(v)}")
        return str(v)
    return parse


def _int(low: int) -> Parser:
    def parse(v: Any, _: Path) -> int:
        if isinstance(v, bool) or not isinstance(v, int) or v < low:
            raise _Bad(f"an integer >= {low}, not {json.dumps(v)}")
        return v
    return parse


def _fraction(high_inclusive: bool) -> Parser:
    def parse(v: Any, _: Path) -> float:
        x = _number(v)
        if not (0.0 < x < 1.0 or (high_inclusive and x == 1.0)):
            raise _Bad(f"a number between 0 and 1{' (1 included)' if high_inclusive else ''}, "
                       f"not {json.dumps(v)}")
        return x
    return parse


def _channels(nonzero: bool) -> Parser:
    """A scalar, or one value per channel (three, in the network's colour order)."""
    def parse(v: Any, _: Path) -> float | tuple[float, ...]:
        values = v if isinstance(v, list) else [v]
        if isinstance(v, list) and len(v) != 3:
            raise _Bad(f"a number or a list of 3 numbers, not {json.dumps(v)}")
        out = tuple(_number(x) for x in values)
        if nonzero and any(x == 0 for x in out):
            raise _Bad(f"non-zero, not {json.dumps(v)}")
        return out if isinstance(v, list) else out[0]
    return parse


def _type_thresholds(v: Any, base: Path) -> tuple[tuple[str, float], ...]:
    """``{"people": 0.4, "car": 0.3}``: a score threshold per inference type."""
    if not isinstance(v, dict) or not v:
        raise _Bad(f"an object of inference type -> threshold, not {json.dumps(v)[:80]}")
    return tuple((_text(k), _fraction(False)(x, base)) for k, x in v.items())


def _labels(v: Any, base: Path) -> tuple[str, ...]:
    if isinstance(v, str):  # a file next to the sidecar
        return read_labels(base / v)
    if not isinstance(v, list) or not all(isinstance(x, (str, int)) for x in v):
        raise _Bad(f"a list of strings or a labels file name, not {json.dumps(v)[:80]}")
    return tuple(str(x) for x in v)


def _int_list(v: Any, _: Path) -> tuple[int, ...]:
    if not isinstance(v, list) or not v or not all(
            isinstance(x, int) and not isinstance(x, bool) and x > 0 for x in v):
        raise _Bad(f"a non-empty list of positive integers, not {json.dumps(v)}")
    return tuple(v)


def _object(cls: type, tuples: tuple[str, ...] = ()) -> Parser:
    names = {f.name for f in fields(cls)}

    def parse(v: Any, _: Path) -> Any:
        if not isinstance(v, dict):
            raise _Bad(f"an object with keys from {sorted(names)}")
        unknown = set(v) - names
        if unknown:
            raise _Bad(f"an object with keys from {sorted(names)}; {sorted(unknown)} unknown")
        try:
            return cls(**{k: tuple(x) if k in tuples else x for k, x in v.items()})
        except TypeError as exc:
            raise _Bad(str(exc)) from exc
    return parse


#: sidecar key -> (ModelSpec field it sets, parser). ``postprocess`` is the older name of
#: ``layout``; ``labels_file`` the older form of ``labels`` as a file name.
KEYS: dict[str, tuple[str, Parser]] = {
    "file": ("file", _text),
    "layout": ("postprocess", _choice(*LAYOUT_NAMES)),
    "postprocess": ("postprocess", _choice(*LAYOUT_NAMES)),
    "labels": ("labels", _labels),
    "labels_file": ("labels", lambda v, base: read_labels(base / _text(v))),
    "threshold": ("threshold", _fraction(False)),
    "type_thresholds": ("type_thresholds", _type_thresholds),
    "iou_threshold": ("iou_threshold", _fraction(True)),
    "max_detections": ("max_detections", _int(1)),
    "batch": ("batch", _int(1)),
    "cpu_share": ("cpu_share", _fraction(True)),
    "input_w": ("input_w", _int(1)),
    "input_h": ("input_h", _int(1)),
    "color": ("color", _choice("RGB", "BGR")),
    "mean": ("mean", _channels(False)),
    "scale": ("scale", _channels(True)),
    "resize": ("resize", _choice("stretch", "letterbox")),
    "strides": ("strides", _int_list),
    "box_format": ("box_format", _choice("xyxy", "cxcywh")),
    "box_units": ("box_units", _choice("pixels", "normalised")),
    "score_activation": ("score_activation", _choice("none", "sigmoid")),
    "anchors": ("anchors", _object(AnchorOptions, ("strides", "aspect_ratios"))),
    "decode": ("decode", _object(DecodeOptions, ("keypoint_box",))),
    "ignore_classes": ("ignore_classes", _int_list),
}
_OPTION_FIELDS = {f.name for f in fields(LayoutOptions)}


def load_sidecar(path: Path) -> dict[str, Any]:
    """The JSON object in ``path`` (not yet checked)."""
    try:
        loaded = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelError(f"cannot read model sidecar {path}: {exc}") from exc
    if not isinstance(loaded, dict):
        raise ModelError(f"model sidecar {path} must hold a JSON object")
    return loaded


def parse_sidecar(name: str, side: Mapping[str, Any], base: Path) -> dict[str, Any]:
    """Sidecar object -> ModelSpec keyword arguments (layout options gathered in ``options``).

    Raises :class:`ModelError` naming the first unknown key, or the key whose value has the
    wrong type or range and what it should be.
    """
    unknown = sorted(set(side) - set(KEYS))
    if unknown:
        raise ModelError(
            f"model {name!r}: unknown key(s) {', '.join(map(json.dumps, unknown))} in its JSON "
            f"sidecar (known: {', '.join(KEYS)})"
        )
    if "layout" in side and "postprocess" in side and side["layout"] != side["postprocess"]:
        raise ModelError(f"model {name!r}: sidecar gives both \"layout\" and \"postprocess\"")
    if "labels" in side and "labels_file" in side:
        raise ModelError(f"model {name!r}: sidecar gives both \"labels\" and \"labels_file\"")
    kw: dict[str, Any] = {}
    for key, value in side.items():
        field_name, parse = KEYS[key]
        try:
            kw[field_name] = parse(value, base)
        except _Bad as exc:
            raise ModelError(f"model {name!r}: sidecar key {key!r} must be {exc}") from None
    options = {k: kw.pop(k) for k in list(kw) if k in _OPTION_FIELDS}
    if options:
        kw["options"] = LayoutOptions(**options)
    return kw
