"""Real JPEG frames for the bench, cut from the sample videos at a fixed size."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2

from ..core.errors import ConfigError

#: Which sample video shows what a type looks for (faces are in Megamind, people in vtest).
SAMPLE_FOR_TYPE = {"face": "Megamind.avi"}
DEFAULT_SAMPLE = "vtest.avi"


def sample_video(sample_dir: Path, infer_type: str) -> Path:
    path = Path(sample_dir) / SAMPLE_FOR_TYPE.get(infer_type, DEFAULT_SAMPLE)
    if not path.is_file():
        raise ConfigError(f"sample video {path} not found; run tools/download-samples.sh "
                          "(or make samples)")
    return path


def video_jpegs(path: Path, count: int, size: tuple[int, int], quality: int = 80,
                step: int = 2) -> list[bytes]:
    """``count`` frames of ``path`` (every ``step``-th, repeated if the video is short) as JPEGs
    of ``size`` (w, h) at ``quality``, as ``ei stream`` encodes them."""
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise ConfigError(f"cannot open sample video {path}")
    out: list[bytes] = []
    index = 0
    try:
        while len(out) < count:
            ok, image = cap.read()
            if not ok:
                break
            index += 1
            if index % step:
                continue
            shrink = image.shape[1] > size[0]
            resized = cv2.resize(image, size,
                                 interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
            ok, buf = cv2.imencode(".jpg", resized, [cv2.IMWRITE_JPEG_QUALITY, quality])
            if ok:
                out.append(buf.tobytes())
    finally:
        cap.release()
    if not out:
        raise ConfigError(f"sample video {path} has no readable frames")
    return cycle(out, count)


def cycle(jpegs: Sequence[bytes], count: int) -> list[bytes]:
    """``count`` items taken round-robin from ``jpegs`` (a long queue from a few frames)."""
    return [jpegs[i % len(jpegs)] for i in range(count)]
