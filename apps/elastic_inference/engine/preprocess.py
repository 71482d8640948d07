"""Host-side image preparation shared by the runtime and INT8 calibration.

The runtime only resizes on the host (the rest is folded into the compiled model); calibration
feeds the bare network, so it also needs the float input that folded preprocessing produces.
Both go through :func:`resize_to_input`, so INT8 scales are computed on exactly the pixels the
worker will later feed. Pure numpy/cv2: no openvino here.
"""

from __future__ import annotations

import ctypes
from typing import Any, cast

import cv2
import numpy as np
import numpy.typing as npt

from ..core.errors import InvalidMessage, ModelError
from .models import ModelSpec


def resize_to_input(image: np.ndarray, w: int, h: int) -> np.ndarray:
    """BGR ``[H, W, 3]`` uint8 image -> contiguous ``[h, w, 3]`` uint8 at the model size.

    An image already at the model size and contiguous is returned as is (no copy).
    """
    if image.shape[0] == h and image.shape[1] == w and image.flags.c_contiguous:
        return image
    # Outputs are allocated here, GIL held, not by OpenCV from inside the call, where taking
    # the GIL back from another thread blocks a decode thread once more per frame (BlazeFace
    # worker 1,109 -> 1,124 frames/s, three alternating pairs; NanoDet unchanged).
    out = np.empty((h, w, *image.shape[2:]), np.uint8)
    if image.shape[1] >= 2 * w and image.shape[0] >= 2 * h:
        # Big shrink: plain bilinear aliases (small faces suffer), INTER_AREA at an odd
        # ratio costs ~3 ms for 1280x720; bilinear to 2x then INTER_AREA's fast exact-2x
        # path gives the same scores for ~0.2-0.5 ms. Below 2x on either axis (the usual
        # case after a reduced JPEG decode) bilinear alone is enough and 3x cheaper.
        mid = np.empty((2 * h, 2 * w, *image.shape[2:]), np.uint8)
        cv2.resize(image, (2 * w, 2 * h), dst=mid, interpolation=cv2.INTER_LINEAR)
        cv2.resize(mid, (w, h), dst=out, interpolation=cv2.INTER_AREA)
    else:
        cv2.resize(image, (w, h), dst=out, interpolation=cv2.INTER_LINEAR)
    return out


#: Letterbox padding grey, the value YOLO-family training and exports pad with.
PAD_VALUE = 114


def letterbox_geometry(fw: int, fh: int, w: int, h: int) -> tuple[int, int, int, int]:
    """Where a ``fw x fh`` frame lands in a ``w x h`` letterbox: ``(x, y, width, height)``.

    Scaled to fit whole with its aspect ratio, centred, the rest padded (as YOLO exports are
    usually fed).
    """
    r = min(w / fw, h / fh)
    nw, nh = max(1, min(w, round(fw * r))), max(1, min(h, round(fh * r)))
    return (w - nw) // 2, (h - nh) // 2, nw, nh


def letterbox(image: np.ndarray, w: int, h: int) -> np.ndarray:
    """BGR image -> ``[h, w, 3]`` uint8 letterbox (see :func:`letterbox_geometry`)."""
    x, y, nw, nh = letterbox_geometry(image.shape[1], image.shape[0], w, h)
    out = np.full((h, w, 3), PAD_VALUE, dtype=np.uint8)
    out[y:y + nh, x:x + nw] = resize_to_input(image, nw, nh)
    return out


def unletterbox(box: tuple[float, float, float, float], fw: int, fh: int, w: int, h: int
                ) -> tuple[float, float, float, float] | None:
    """A box normalised to the letterboxed input -> normalised to the frame, clipped; ``None``
    when it lies wholly in the padding."""
    x, y, nw, nh = letterbox_geometry(fw, fh, w, h)
    x1, y1, x2, y2 = box
    fx1, fx2 = (min(max((v * w - x) / nw, 0.0), 1.0) for v in (x1, x2))
    fy1, fy2 = (min(max((v * h - y) / nh, 0.0), 1.0) for v in (y1, y2))
    return (fx1, fy1, fx2, fy2) if fx2 > fx1 and fy2 > fy1 else None


def network_input(image: np.ndarray, spec: ModelSpec) -> np.ndarray:
    """BGR uint8 image -> float32 NHWC ``[1, h, w, 3]`` as the bare network expects it.

    The host-side twin of the ``PrePostProcessor`` steps the runtime folds into the compiled
    model (colour order, then ``(x - mean) / scale``); used where a model runs without them.
    """
    if spec.input_w <= 0 or spec.input_h <= 0:
        raise ModelError(f"model {spec.name!r} has no fixed input size (input_w/input_h)")
    if spec.resize == "letterbox":
        x = letterbox(image, spec.input_w, spec.input_h)
    else:
        x = resize_to_input(image, spec.input_w, spec.input_h)
    if spec.color == "RGB":
        x = cv2.cvtColor(x, cv2.COLOR_BGR2RGB)
    out = x.astype(np.float32)
    if spec.mean is not None:
        out -= np.asarray(spec.mean, dtype=np.float32)
    if spec.scale is not None:
        out /= np.asarray(spec.scale, dtype=np.float32)
    return out[np.newaxis]


# JPEG decoding at reduced size: the DCT scales down for free, so a 1280x720 frame for a
# 300x300 model is decoded at 640x360 in about half the time.
_REDUCED = {1: cv2.IMREAD_COLOR, 2: cv2.IMREAD_REDUCED_COLOR_2, 4: cv2.IMREAD_REDUCED_COLOR_4,
            8: cv2.IMREAD_REDUCED_COLOR_8}


def reduction_for(w: int, h: int, input_size: tuple[int, int]) -> int:
    """Largest JPEG DCT reduction (1, 2, 4, 8) that keeps the frame at least model-input sized."""
    iw, ih = input_size
    factor = 1
    for f in (2, 4, 8):
        if w // f >= iw and h // f >= ih:
            factor = f
    return factor


def one_thread_per_call() -> None:
    """Make every OpenCV call run on its caller's thread only.

    The worker decodes and resizes on its own pool, a frame per thread; OpenCV's pool would
    split each resize again: a 1280x720 -> 416x416 bilinear resize took 0.52 ms of CPU on two
    threads against 0.35 ms on one (2 cores, 2026-12-02), and those threads compete with the
    pool and OpenVINO's for the same cores.
    """
    cv2.setNumThreads(1)


#: glibc's ``mallopt`` parameters (``malloc.h``).
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
#: Blocks below this come from the heap, not a fresh mapping: a decoded 4K frame is 24.9 MB.
FRAME_MMAP_THRESHOLD = 32 << 20


def reuse_frame_memory() -> bool:
    """Keep freed frame buffers in the process instead of handing them back to the kernel.

    Every frame allocates a decoded image (2.7 MB at 1280x720) and a model input (0.5 MB at
    416x416) on a decode thread, freed later on another. glibc returns such blocks at once (a
    block over its mmap threshold is unmapped; a thread arena's heap is trimmed), so the next
    frame page-faulted and zeroed them again: about 130 faults a frame. With this, NanoDet's
    decode threads took 1.53 CPU ms a frame instead of 1.78, and the worker ran 184 frames/s
    instead of 177 (three alternating pairs, 1280x720, 2 cores). The thresholds are fixed the
    way glibc's own dynamic rule sets them (trim at twice the mmap threshold). False where the
    C library has no ``mallopt`` (musl's does nothing, macOS has none): nothing changes there.
    """
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, FRAME_MMAP_THRESHOLD)) and \
        bool(mallopt(_M_TRIM_THRESHOLD, 2 * FRAME_MMAP_THRESHOLD))


def decode_jpeg(jpeg: bytes, reduction: int = 1) -> npt.NDArray[np.uint8]:
    """Decode to BGR, optionally at 1/2, 1/4 or 1/8 size; raise InvalidMessage if corrupt.

    Callers check the header first (core.jpeg); OpenCV's own limits
    (``OPENCV_IO_MAX_IMAGE_PIXELS``) raise cv2.error, which is an invalid frame too, never a
    crash of the decode pool's caller.
    """
    try:
        image = cv2.imdecode(np.frombuffer(jpeg, np.uint8), _REDUCED[reduction])
    except cv2.error as exc:
        raise InvalidMessage(f"JPEG refused by the decoder: {str(exc).strip()[-120:]}") from exc
    if image is None or image.size == 0:
        raise InvalidMessage("JPEG could not be decoded")
    return cast(npt.NDArray[np.uint8], image)


def scaled_size(w: int, h: int, max_width: int) -> tuple[int, int]:
    """Size after downscaling to ``max_width`` (0 = never), keeping the aspect ratio."""
    if max_width <= 0 or w <= max_width:
        return w, h
    return max_width, max(1, round(h * max_width / w))


def encode_jpeg(image: Any, max_width: int, quality: int) -> tuple[bytes, int, int] | None:
    """Downscale and JPEG-encode one frame; ``None`` for a frame that is not a usable image."""
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.size == 0 \
            or image.ndim not in (2, 3):
        return None
    h, w = image.shape[:2]
    sw, sh = scaled_size(w, h, max_width)
    if (sw, sh) != (w, h):
        image = cv2.resize(image, (sw, sh), interpolation=cv2.INTER_AREA)
    ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        return None
    return buf.tobytes(), sw, sh
