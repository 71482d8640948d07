"""The infer requests of one compiled model, each fed one frame or one batch of frames.

A light model (BlazeFace: 128x128, about 0.5 ms) spends much of each inference on the request
itself, and the worker's thread spends much of each frame starting requests and reading their
outputs. Compiled for a batch, the same model ran 1.6x the frames per second (benchmark_app,
8 x 128x128) and the worker starts one request per batch. A batch that never fills (a quiet
queue) runs frame by frame on a second, single-frame compilation, never padded: padding would
make a frame cost a whole batch. See doc/models.md ("Batches").

No Python completion callback, on purpose: a callback makes OpenVINO's threads take the GIL,
and tearing the compiled model down (which joins those threads, GIL held) then deadlocks now
and then (reproduced within a minute of create/infer/close cycles on OpenVINO 2026.4). The
queue's built-in callback is pure C++; outputs are read on the calling thread instead.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..core.result import Detection
from .detector import Done, Prepared

#: Raw outputs of one request (its frames on their first axis) and each frame's letterboxed
#: size (None when stretched) -> each frame's detections.
Decode = Callable[[list[np.ndarray], "list[tuple[int, int] | None]"], list[list[Detection]]]


@dataclass(frozen=True)
class Staged:
    """A prepared frame waiting for its request: the tensor, the caller's tag, and the size
    of the frame it was letterboxed from (None when stretched)."""

    tensor: Prepared
    tag: int
    frame_size: tuple[int, int] | None


def batched_model(net: Any, batch: int) -> Any:
    """A copy of ``net`` (one input, batch 1) taking ``batch`` frames per request, or raises
    ``RuntimeError`` when its outputs would not have a batch axis of ``batch``.

    Converted graphs often write their batch of 1 into the reshapes of their heads (BlazeFace's
    ``[1, -1, 16]``), which would fold the frames of a batch into one another. Such a reshape
    is given ``0`` ("keep the input's dimension") in place of the 1: the same graph at batch 1.
    """
    from openvino import opset13 as ops

    copy = net.clone()
    for op in copy.get_ordered_ops():
        if op.get_type_name() != "Reshape" or op.get_attributes().get("special_zero"):
            continue
        target = op.input_value(1).get_node()
        data = op.input_value(0).get_partial_shape()
        if (target.get_type_name() != "Constant" or data.rank.is_dynamic
                or data.rank.get_length() == 0 or not data[0].is_static
                or data[0].get_length() != 1):
            continue
        dims = target.get_vector()
        if dims.ndim != 1 or dims.size == 0 or dims[0] != 1 or 0 in dims[1:]:
            continue
        kept = ops.reshape(op.input_value(0), ops.constant(np.array([0, *dims[1:]], dims.dtype)),
                           special_zero=True)
        kept.set_friendly_name(op.get_friendly_name())
        op.output(0).replace(kept.output(0))
    copy.validate_nodes_and_infer_types()
    shape = list(copy.input(0).get_partial_shape())
    copy.reshape({copy.input(0).get_any_name(): [batch, *shape[1:]]})
    for one, many in zip(net.outputs, copy.outputs, strict=True):
        single, batched = list(one.get_partial_shape()), list(many.get_partial_shape())
        if batched[:1] != [batch] or batched[1:] != single[1:]:
            raise RuntimeError(f"output {many.get_any_name()} is {many.get_partial_shape()} "
                               f"at batch {batch}, {one.get_partial_shape()} at batch 1")
    return copy


class Lane:
    """An ``AsyncInferQueue`` of a model compiled for ``batch`` frames per request."""

    def __init__(self, compiled: Any, batch: int, num_requests: int, outputs: Sequence[int],
                 decode: Decode) -> None:
        import openvino as ov

        self.batch = batch
        self._queue = ov.AsyncInferQueue(compiled, max(1, num_requests))
        self.num_requests = len(self._queue)
        self._outputs = tuple(outputs)
        self._decode = decode
        self._pending: dict[int, list[Staged]] = {}  # request id -> its frames
        self._inputs: dict[int, np.ndarray] = {}  # request id -> tensor it reads in place
        self._started = 0
        # A batch is copied into its request's own input, bound once: binding a new array
        # at every start cost 0.07-0.09 ms of the calling thread's CPU a batch, against
        # 0.02-0.035 (BlazeFace, 8 frames, 2 cores); in the worker its main thread spent
        # 0.010 ms a frame less (16 alternating pairs, doc/benchmarks.md). One frame is still
        # read in place (a copy would cost what the binding saves).
        self._buffers: dict[int, np.ndarray] = {}
        if batch > 1:
            model_input = compiled.input(0)
            shape = tuple(model_input.get_shape())
            dtype = model_input.get_element_type().to_dtype()
            for rid in range(self.num_requests):
                buffer = np.empty(shape, dtype)
                self._queue[rid].set_input_tensor(ov.Tensor(buffer, shared_memory=True))
                self._buffers[rid] = buffer

    def start(self, frames: Sequence[Staged]) -> list[Done]:
        """Start one request on ``frames`` (exactly ``batch`` of them); returns the detections
        of the request it had to reuse. Blocks (GIL released) while every request is busy."""
        rid = self._queue.get_idle_request_id()
        # A finished request's outputs are copied and post-processed only after it runs
        # again, so the device never waits on the host's decoding and NMS: BlazeFace worker
        # faster in 5 of 6 alternating pairs (+2 % on average, 2 cores).
        finished = self._take(rid) if rid in self._pending else None
        self._started += 1
        # start_async takes this same request: it is the front of the queue's idle list, and
        # only one thread submits (the detector's lock).
        if self.batch == 1:
            data = frames[0].tensor
            # The request reads ``data`` in place (share_inputs): keep it alive until reuse.
            self._inputs[rid] = data
            self._queue.start_async({0: np.asarray(data)}, self._started, share_inputs=True)
        else:
            np.concatenate([f.tensor for f in frames], out=self._buffers[rid])
            self._queue.start_async(userdata=self._started)
        if self._queue.userdata[rid] != self._started:  # cheap guard on that invariant
            raise RuntimeError("AsyncInferQueue started another request than expected")
        self._pending[rid] = list(frames)
        return self._decode_taken(*finished) if finished else []

    def finish(self) -> list[Done]:
        """Wait for every running request; the detections of all not yet returned."""
        if not self._pending:
            return []
        self._queue.wait_all()
        done = [d for rid in list(self._pending)
                for d in self._decode_taken(*self._take(rid, copy=False))]
        self._inputs.clear()
        return done

    def close(self) -> None:
        """Wait for running requests and let go of their inputs (outputs are dropped)."""
        self._queue.wait_all()
        self._pending.clear()
        self._inputs.clear()

    def _take(self, rid: int, copy: bool = True) -> tuple[list[Staged], list[np.ndarray]]:
        """A finished request's frames and its outputs, copied (BlazeFace: 0.5 MB for 8
        frames) when it is to run again before they are post-processed."""
        request = self._queue[rid]
        outputs = [request.get_output_tensor(i).data for i in self._outputs]
        return self._pending.pop(rid), [o.copy() for o in outputs] if copy else outputs

    def _decode_taken(self, frames: list[Staged], outputs: list[np.ndarray]) -> list[Done]:
        found = self._decode(outputs, [f.frame_size for f in frames])
        return [(f.tag, d) for f, d in zip(frames, found, strict=True)]
