"""``Detector`` on OpenVINO: THROUGHPUT hint, ``AsyncInferQueue``, preprocessing in the graph.

The host only resizes (cv2, into a fresh array that a one-frame request reads in place and a
batch is copied from into its request's own input);
u8 -> f32, BGR -> RGB and ``(x - mean) / scale`` are folded into the compiled model with
``PrePostProcessor``, where the plugin fuses them into the first layer. Frames are spread over
infer requests (``lanes``), one more than the device runs at once, several frames per request
for a model whose spec asks for a batch; a finished request is restarted first and its outputs
post-processed on the calling thread after.

openvino is imported inside the class, never at module level: the gateway and the unit tests
import ``engine`` without having openvino installed.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Collection, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from ..core.errors import ModelError
from ..core.result import Detection
from .detector import Done, Image, infer_all
from .lanes import Lane, Staged, batched_model
from .layouts.base import Output
from .layouts.registry import select
from .models import ModelSpec
from .preprocess import letterbox, resize_to_input, unletterbox

log = logging.getLogger(__name__)

VIRTUAL_DEVICES = ("AUTO", "MULTI", "HETERO", "BATCH")
_FETCH_HINT = "run tools/download-models.sh (or `ei models fetch`) to download the models"


def openvino_version() -> str:
    """The installed OpenVINO release (``2026.4.1``), for reports."""
    import openvino as ov

    return str(ov.get_version()).split("-")[0]


def model_input_shape(path: Path) -> tuple[int, ...]:
    """The input shape written in a model file (-1 for a dynamic dimension)."""
    import openvino as ov

    shape = ov.Core().read_model(str(path)).input(0).get_partial_shape()
    return tuple(d.get_length() if d.is_static else -1 for d in shape)


def cpu_streams(share: float, device: str, cpus: int | None = None) -> dict[str, str]:
    """OpenVINO properties that run a model on ``share`` of this process's CPUs: that many
    streams of one thread each. Empty (OpenVINO's THROUGHPUT choice: every CPU) for a share
    of 1 or another device than the CPU.

    The THROUGHPUT hint takes every core for inference, but the worker decodes JPEGs on the
    same cores; for a model about as cheap as the decoding, the two then preempt each other
    (doc/models.md, "CPU share").
    """
    if share >= 1.0 or device != "CPU":
        return {}
    available = cpus if cpus is not None else len(os.sched_getaffinity(0))
    streams = str(max(1, int(available * share + 0.5)))
    return {"NUM_STREAMS": streams, "INFERENCE_NUM_THREADS": streams}


def check_device(device: str, available: Sequence[str]) -> str:
    """Normalise ``device`` and make sure the machine has it; virtual devices pass through.

    ``GPU`` matches ``GPU.0``/``GPU.1`` (OpenVINO picks the first), so the usual names work on
    multi-GPU hosts too.
    """
    dev = device.strip().upper()
    if not dev:
        raise ModelError("no inference device given (CPU, GPU, NPU or AUTO)")
    if dev.split(":", 1)[0] in VIRTUAL_DEVICES:
        return dev
    if dev in available or any(a.split(".", 1)[0] == dev for a in available):
        return dev
    raise ModelError(
        f"inference device {device!r} is not available on this machine; "
        f"available: {', '.join(available) or 'none'} (or AUTO)"
    )


class _Letterboxed(np.ndarray):
    """A prepared input that remembers the frame size its letterbox was made from, so the
    boxes can be mapped back; the worker passes prepared inputs through untouched."""

    frame_size: tuple[int, int] = (0, 0)


def _outputs(net: Any) -> list[Output]:
    return [
        Output(i, tuple(d.get_length() if d.is_static else -1 for d in o.get_partial_shape()),
               tuple(sorted(o.get_names())))
        for i, o in enumerate(net.outputs)
    ]


class OpenVINODetector:
    """One compiled model plus an ``AsyncInferQueue``; implements :class:`.detector.Detector`."""

    def __init__(
        self,
        spec: ModelSpec,
        model_dir: Path,
        device: str = "CPU",
        label_filter: Collection[str] | None = None,
        performance_hint: str = "THROUGHPUT",
        num_requests: int | None = None,
        precision: str = "",
    ) -> None:
        import openvino as ov
        from openvino.preprocess import ColorFormat, PrePostProcessor

        self.spec = spec
        self.model = spec.name
        path = spec.path(Path(model_dir))
        if not path.is_file():
            raise ModelError(f"model file for {spec.name!r} not found at {path}; {_FETCH_HINT}")
        if path.suffix.lower() == ".xml" and not path.with_suffix(".bin").is_file():
            raise ModelError(f"model {spec.name!r}: {path.with_suffix('.bin')} is missing")

        core = ov.Core()
        requested = check_device(device, core.available_devices)
        try:
            net = core.read_model(str(path))
        except RuntimeError as exc:
            raise ModelError(f"OpenVINO cannot read model {spec.name!r} ({path}): {exc}") from exc
        if len(net.inputs) != 1:
            raise ModelError(f"model {spec.name!r} has {len(net.inputs)} inputs; one is supported")

        try:
            layout, (w, h) = self._input_geometry(net, spec)
        except RuntimeError as exc:  # a reshape the model's graph does not allow
            raise ModelError(f"cannot set up the input of model {spec.name!r}: {exc}") from exc
        found, self._decoder = select(
            _outputs(net),
            spec.layout_context((w, h), None if label_filter is None else frozenset(label_filter)),
            spec.postprocess,
        )
        # A decoder that reads a whole batched request at once (``layouts.base.Decoder``).
        self._decode_batch = getattr(self._decoder, "batch", None)
        defaults = found.input_defaults
        color = spec.color or defaults.color
        mean = defaults.mean if spec.mean is None else spec.mean
        scale = defaults.scale if spec.scale is None else spec.scale
        try:
            ppp = PrePostProcessor(net)
            inp = ppp.input()
            inp.tensor().set_element_type(ov.Type.u8).set_layout(
                ov.Layout("NHWC")
            ).set_color_format(ColorFormat.BGR)
            inp.model().set_layout(ov.Layout(layout))
            steps = inp.preprocess().convert_element_type(ov.Type.f32)
            if color == "RGB":
                steps.convert_color(ColorFormat.RGB)
            if mean != 0.0:  # per channel: in the network's colour order
                steps.mean(list(mean) if isinstance(mean, tuple) else float(mean))
            if scale != 1.0:
                steps.scale(list(scale) if isinstance(scale, tuple) else float(scale))
            net = ppp.build()
        except RuntimeError as exc:
            raise ModelError(f"cannot set up the input of model {spec.name!r}: {exc}") from exc
        self.layout = found.name
        self._letterbox = spec.resize == "letterbox"

        config = {"PERFORMANCE_HINT": performance_hint,
                  # e.g. f32: exact float where the CPU would run BF16
                  **({"INFERENCE_PRECISION_HINT": precision} if precision else {}),
                  **cpu_streams(spec.cpu_share, requested)}
        batched = self._batched(net, spec) if spec.batch > 1 else None
        self._compiled = self._compile(core, net, requested, config, spec)
        used = self._compiled.get_property("EXECUTION_DEVICES")
        self.device = ",".join(used) if isinstance(used, (list, tuple)) else str(used)
        try:  # what the device really computes in (bfloat16 for "FP32" on AVX-512 BF16 CPUs)
            hint = self._compiled.get_property("INFERENCE_PRECISION_HINT")
            self.precision = str(hint.to_string() if hasattr(hint, "to_string") else hint)
        except RuntimeError:  # a virtual device (AUTO, MULTI) may not report it
            self.precision = "unknown"
        try:
            self.streams = int(self._compiled.get_property("NUM_STREAMS"))
        except (RuntimeError, TypeError, ValueError):  # not every device reports streams
            self.streams = 0

        def lane(compiled: Any, batch: int) -> Lane:
            # One request more than the device runs at once: one is always queued, so a
            # stream finishing never waits for the worker's thread to start the next (BlazeFace
            # worker faster in 4 of 5 alternating pairs, +2.6 %; NanoDet unchanged; 2 cores).
            n = num_requests or int(compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS")) + 1
            return Lane(compiled, batch, n, self._decoder.outputs, self._decode)

        self._single = lane(self._compiled, 1)
        self._full = (self._single if batched is None
                      else lane(self._compile(core, batched, requested, config, spec), spec.batch))
        self.batch = self._full.batch
        self.num_requests = self._full.num_requests
        self.input_size: tuple[int, int] = (w, h)
        self._lock = threading.Lock()
        self._closed = False
        self._staged: list[Staged] = []
        log.info(
            "model %s (%s, layout %s, %s %s mean %s scale %s) compiled for %s, running on %s "
            "in %s with %d streams, %d infer requests of %d frames, input %dx%d",
            spec.name,
            path.name,
            self.layout,
            spec.resize,
            color,
            mean,
            scale,
            requested,
            self.device,
            self.precision,
            self.streams,
            self.num_requests,
            self.batch,
            w,
            h,
        )

    @staticmethod
    def _compile(core: Any, net: Any, device: str, config: dict[str, str], spec: ModelSpec
                 ) -> Any:
        try:
            return core.compile_model(net, device, config)
        except RuntimeError as exc:
            raise ModelError(
                f"OpenVINO cannot compile model {spec.name!r} for {device}: {exc}"
            ) from exc

    @staticmethod
    def _batched(net: Any, spec: ModelSpec) -> Any:
        """The (pre-processed) network taking ``spec.batch`` frames per request."""
        try:
            return batched_model(net, spec.batch)
        except RuntimeError as exc:  # a graph that mixes the frames of a batch
            reason = [line for line in str(exc).splitlines() if line.strip()][-1:]
            raise ModelError(
                f"model {spec.name!r} cannot run {spec.batch} frames per request "
                f"({''.join(reason).strip()}); set \"batch\" to 1 in its JSON sidecar"
            ) from exc

    @staticmethod
    def _input_geometry(net: Any, spec: ModelSpec) -> tuple[str, tuple[int, int]]:
        """Model layout and ``(w, h)``; reshapes a dynamic or user-resized OMZ input."""
        pshape = net.input(0).get_partial_shape()
        if pshape.rank.is_dynamic or pshape.rank.get_length() != 4:
            raise ModelError(f"model {spec.name!r}: input must be a 4-D image tensor, got {pshape}")
        dims = [d.get_length() if d.is_static else -1 for d in pshape]
        if dims[3] == 3:
            layout, h, w = "NHWC", dims[1], dims[2]
        elif dims[1] == 3:
            layout, h, w = "NCHW", dims[2], dims[3]
        else:
            raise ModelError(f"model {spec.name!r}: cannot tell the channel axis of input {pshape}")
        want_w, want_h = spec.input_w or w, spec.input_h or h
        if want_w <= 0 or want_h <= 0:
            raise ModelError(
                f"model {spec.name!r} has a dynamic input size ({pshape}); set "
                '"input_w" and "input_h" in its JSON sidecar to the size it was exported at'
            )
        if (want_w, want_h) != (w, h) or dims[0] != 1:
            if spec.postprocess == "mediapipe-ssd" and w > 0 and h > 0:
                raise ModelError(
                    f"model {spec.name!r}: input is {w}x{h} but its anchors expect "
                    f"{want_w}x{want_h}"
                )
            shape = [1, want_h, want_w, 3] if layout == "NHWC" else [1, 3, want_h, want_w]
            net.reshape({net.input(0).get_any_name(): shape})
        return layout, (want_w, want_h)

    def _prepare(self, frame: Image) -> np.ndarray:
        """BGR image of any size -> contiguous ``[1, h, w, 3]`` u8 at the model size."""
        image: np.ndarray = frame
        if image.ndim == 2:
            image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
        elif image.ndim == 3 and image.shape[2] == 4:
            image = cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(
                f"expected a BGR uint8 image, got shape {image.shape} dtype {image.dtype}"
            )
        w, h = self.input_size
        if not self._letterbox:
            return resize_to_input(image, w, h)[np.newaxis]
        boxed = letterbox(image, w, h)[np.newaxis].view(_Letterboxed)
        boxed.frame_size = (image.shape[1], image.shape[0])
        return boxed

    def _decode(self, outputs: list[np.ndarray], frames: Sequence[tuple[int, int] | None]
                ) -> list[list[Detection]]:
        """A request's raw outputs (``len(frames)`` frames on their first axis) -> each
        frame's detections, boxes mapped back out of a letterbox. A decoder with a ``batch``
        method (``layouts.base``) reads a whole batch in one pass."""
        if len(frames) == 1:
            found = [self._decoder(outputs)]
        elif self._decode_batch is not None:
            found = self._decode_batch(outputs, len(frames))
        else:
            found = [self._decoder([o[k:k + 1] for o in outputs]) for k in range(len(frames))]
        return [self._unletterbox(d, f) for d, f in zip(found, frames, strict=True)]

    def _unletterbox(self, found: list[Detection], frame: tuple[int, int] | None
                     ) -> list[Detection]:
        if frame is None:
            return found
        w, h = self.input_size
        out = []
        for d in found:
            box = unletterbox(d.box, frame[0], frame[1], w, h)
            if box is not None:
                out.append(Detection(d.label, d.score, box))
        return out

    def prepare(self, image: Image) -> np.ndarray:
        """Public, thread-safe form of the host-side resize (the worker's decode pool runs it)."""
        return self._prepare(image)

    def submit(self, prepared: np.ndarray, tag: int) -> list[Done]:
        """Stage one frame, starting a request once a batch is full; returns the detections
        of the request it had to reuse.

        Blocks (GIL released) only while every request is busy. Finished requests are read
        when they are needed again or in :meth:`flush`, on the calling thread.
        """
        with self._lock:
            if self._closed:
                raise ModelError(f"detector for {self.model!r} is closed")
            frame = getattr(prepared, "frame_size", self.input_size) if self._letterbox else None
            self._staged.append(Staged(prepared, tag, frame))
            if len(self._staged) < self.batch:
                return []
            frames, self._staged = self._staged, []
            return self._full.start(frames)

    def flush(self) -> list[Done]:
        """Run what is staged frame by frame, wait for all requests; their detections in
        submission order."""
        with self._lock:
            if self._closed:
                return []
            done: list[Done] = []
            for frame in self._staged:
                done += self._single.start([frame])
            self._staged = []
            done += self._full.finish()
            if self._single is not self._full:
                done += self._single.finish()
            return sorted(done, key=lambda d: d[0])

    def infer(self, images: Sequence[Image]) -> list[list[Detection]]:
        """Detections per image, in input order (host work overlaps the other requests)."""
        return infer_all(self, images)

    def close(self) -> None:
        """Wait for in-flight requests and drop the compiled model."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._staged = []
            self._full.close()
            if self._single is not self._full:
                self._single.close()
            del self._full, self._single, self._compiled

    def __enter__(self) -> OpenVINODetector:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"OpenVINODetector(model={self.model!r}, device={self.device!r})"
