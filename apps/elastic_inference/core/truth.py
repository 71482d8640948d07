"""Truth files: boxes checked by eye on chosen frames of a video, to measure a model against.

Two formats are read (doc/models.md, "Measuring a model"):

- the project's own JSON: ``{"video", "size": [w, h], "labels", "notes", "frames": {"0":
  [{"label", "box": [x1, y1, x2, y2], "ignore"}]}}``, boxes in pixels of the original frame,
  frame keys the frame index as OpenCV reads the video;
- COCO annotations (``images``, ``annotations`` with ``bbox`` ``[x, y, w, h]``,
  ``categories``); an image's frame index is its ``frame_index`` (or ``frame``) field, else the
  last number in its ``file_name`` (``frame_000120.jpg`` is frame 120); ``iscrowd`` or
  ``ignore`` boxes count neither way.

Every problem is a :class:`TruthError` naming the file and the place, so a typo is never
silently a frame without objects. Pure Python: no OpenCV, no engine.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import TruthError
from .result import Box

_OWN_KEYS = {"video", "size", "labels", "notes", "frames"}
_BOX_KEYS = {"label", "box", "ignore"}


@dataclass(frozen=True)
class TruthBox:
    """One object drawn by hand; ``ignore`` marks one that must count neither way (cut by the
    frame edge, mostly hidden, out of focus)."""

    label: str
    box: Box
    ignore: bool = False


@dataclass(frozen=True)
class Truth:
    """Checked boxes per frame index; a listed frame with no boxes has no objects at all."""

    frames: Mapping[int, tuple[TruthBox, ...]]
    labels: tuple[str, ...]
    video: str = ""
    size: tuple[int, int] | None = None

    def label_set(self) -> tuple[str, ...]:
        """The labels the file annotates: its ``labels`` list, else those of its boxes."""
        if self.labels:
            return self.labels
        seen = {b.label for boxes in self.frames.values() for b in boxes}
        return tuple(sorted(seen))


def load_truth(path: Path) -> Truth:
    """Read a truth file in either format (see the module docstring)."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise TruthError(f"cannot read truth file {path}: {exc.strerror or exc}") from exc
    except ValueError as exc:
        raise TruthError(f"truth file {path} is not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise TruthError(f"truth file {path} must hold a JSON object")
    if "images" in data or "annotations" in data:
        return _from_coco(data, path)
    if "frames" in data:
        return _from_own(data, path)
    raise TruthError(f"truth file {path} has neither \"frames\" (the project's format) nor "
                     "\"images\"/\"annotations\" (COCO); see doc/models.md")


def _box(raw: Any, where: str) -> Box:
    if not (isinstance(raw, list) and len(raw) == 4
            and all(isinstance(v, (int, float)) and not isinstance(v, bool)
                    and math.isfinite(v) for v in raw)):
        raise TruthError(f"{where}: box must be four numbers [x1, y1, x2, y2], got {raw!r}")
    x1, y1, x2, y2 = (float(v) for v in raw)
    if x2 <= x1 or y2 <= y1:
        raise TruthError(f"{where}: box {raw!r} is empty (needs x2 > x1 and y2 > y1)")
    return (x1, y1, x2, y2)


def _label(raw: Any, where: str) -> str:
    if not isinstance(raw, str) or not raw.strip():
        raise TruthError(f"{where}: label must be a non-empty string, got {raw!r}")
    return raw.strip()


def _size(raw: Any, where: str) -> tuple[int, int]:
    if not (isinstance(raw, list) and len(raw) == 2
            and all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in raw)):
        raise TruthError(f"{where}: size must be [width, height] in pixels, got {raw!r}")
    return raw[0], raw[1]


def _from_own(data: dict[str, Any], path: Path) -> Truth:
    unknown = set(data) - _OWN_KEYS
    if unknown:
        raise TruthError(f"truth file {path}: unknown keys {sorted(unknown)} "
                         f"(known: {sorted(_OWN_KEYS)})")
    raw_frames = data["frames"]
    if not isinstance(raw_frames, dict) or not raw_frames:
        raise TruthError(f"truth file {path}: \"frames\" must be a non-empty object of "
                         "frame index -> list of boxes")
    frames: dict[int, tuple[TruthBox, ...]] = {}
    for key, boxes in raw_frames.items():
        if not (isinstance(key, str) and key.isdigit()):
            raise TruthError(f"truth file {path}: frame key {key!r} is not a frame index "
                             "(0, 1, 2, ...)")
        if not isinstance(boxes, list):
            raise TruthError(f"truth file {path}, frame {key}: expected a list of boxes")
        out = []
        for i, item in enumerate(boxes):
            where = f"truth file {path}, frame {key}, box {i}"
            if not isinstance(item, dict):
                raise TruthError(f"{where}: expected an object with label and box")
            extra = set(item) - _BOX_KEYS
            if extra:
                raise TruthError(f"{where}: unknown keys {sorted(extra)} "
                                 f"(known: {sorted(_BOX_KEYS)})")
            ignore = item.get("ignore", False)
            if not isinstance(ignore, bool):
                raise TruthError(f"{where}: ignore must be true or false, got {ignore!r}")
            out.append(TruthBox(_label(item.get("label"), where),
                                _box(item.get("box"), where), ignore))
        frames[int(key)] = tuple(out)
    labels = data.get("labels", [])
    if not isinstance(labels, list):
        raise TruthError(f"truth file {path}: labels must be a list of strings")
    size = _size(data["size"], f"truth file {path}") if "size" in data else None
    return Truth(frames=frames, video=str(data.get("video", "")), size=size,
                 labels=tuple(_label(x, f"truth file {path}, labels") for x in labels))


_NUMBER = re.compile(r"(\d+)(?!.*\d)")


def _frame_index(image: Mapping[str, Any], where: str) -> int:
    for key in ("frame_index", "frame"):
        if key in image:
            value = image[key]
            if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
                return value
            raise TruthError(f"{where}: {key} must be a frame index (0, 1, ...), got {value!r}")
    name = image.get("file_name")
    found = _NUMBER.search(Path(name).stem) if isinstance(name, str) else None
    if found is None:
        raise TruthError(f"{where}: no frame index (give \"frame_index\", or a file_name with "
                         f"the frame number in it such as frame_000120.jpg), got {name!r}")
    return int(found.group(1))


def _list(data: Mapping[str, Any], key: str, path: Path) -> list[Any]:
    value = data.get(key)
    if not isinstance(value, list):
        raise TruthError(f"COCO truth file {path}: \"{key}\" must be a list")
    return value


def _from_coco(data: dict[str, Any], path: Path) -> Truth:
    categories: dict[Any, str] = {}
    for i, cat in enumerate(_list(data, "categories", path)):
        where = f"COCO truth file {path}, categories[{i}]"
        if not isinstance(cat, dict) or "id" not in cat:
            raise TruthError(f"{where}: expected an object with id and name")
        categories[cat["id"]] = _label(cat.get("name"), where)
    by_id: dict[Any, int] = {}
    sizes: set[tuple[int, int]] = set()
    for i, image in enumerate(_list(data, "images", path)):
        where = f"COCO truth file {path}, images[{i}]"
        if not isinstance(image, dict) or "id" not in image:
            raise TruthError(f"{where}: expected an object with an id")
        index = _frame_index(image, where)
        if index in by_id.values():
            raise TruthError(f"{where}: frame {index} appears twice")
        by_id[image["id"]] = index
        if "width" in image and "height" in image:
            sizes.add(_size([image["width"], image["height"]], where))
    if not by_id:
        raise TruthError(f"COCO truth file {path}: no images")
    frames: dict[int, list[TruthBox]] = {index: [] for index in by_id.values()}
    for i, ann in enumerate(_list(data, "annotations", path)):
        where = f"COCO truth file {path}, annotations[{i}]"
        if not isinstance(ann, dict):
            raise TruthError(f"{where}: expected an object")
        if ann.get("image_id") not in by_id:
            raise TruthError(f"{where}: image_id {ann.get('image_id')!r} is not in images")
        if ann.get("category_id") not in categories:
            raise TruthError(f"{where}: category_id {ann.get('category_id')!r} is not in "
                             "categories")
        bbox = ann.get("bbox")
        if not (isinstance(bbox, list) and len(bbox) == 4):
            raise TruthError(f"{where}: bbox must be [x, y, width, height], got {bbox!r}")
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in bbox):
            raise TruthError(f"{where}: bbox must be four numbers, got {bbox!r}")
        x, y, w, h = bbox
        box = _box([x, y, x + w, y + h], where)
        ignore = bool(ann.get("iscrowd", 0)) or bool(ann.get("ignore", False))
        frames[by_id[ann["image_id"]]].append(
            TruthBox(categories[ann["category_id"]], box, ignore))
    if len(sizes) > 1:
        raise TruthError(f"COCO truth file {path}: images have different sizes {sorted(sizes)}; "
                         "one truth file describes one video")
    return Truth(frames={k: tuple(v) for k, v in frames.items()},
                 labels=tuple(dict.fromkeys(categories.values())),
                 size=next(iter(sizes)) if sizes else None)
