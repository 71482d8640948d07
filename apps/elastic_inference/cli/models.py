"""``ei models``: ``fetch`` the built-in models (as tools/download-models.sh does), ``quantize``
them to INT8 variants with NNCF, ``eval`` one against a truth file (precision and recall), or
``list`` the registry: inference types, their models, each model's precision and whether its
file is present."""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

from ..core.errors import ModelError
from ..engine import fetch
from ..engine.models import BUILTIN_MODELS, INFER_TYPES
from . import models_eval
from .table import table

log = logging.getLogger(__name__)


def list_models(model_dir: Path) -> str:
    types = [(t.name, t.model, ",".join(t.labels) if t.labels else "(all)", t.description)
             for t in INFER_TYPES.values()]
    missing = {"FP32": "no — run ei models fetch", "INT8": "no — run ei models quantize"}
    models = [(m.name, m.precision, m.file, f"{m.input_w}x{m.input_h}", m.threshold,
               "yes" if (model_dir / m.file).is_file() else missing[m.precision])
              for m in BUILTIN_MODELS.values()]
    return ("TYPES\n" + table(types, ("type", "model", "labels", "what")) + "\n\nMODELS\n"
            + table(models, ("model", "precision", "file", "input", "threshold", "present")))


def quantize_names(requested: list[str] | None, model_dir: Path) -> list[str]:
    """FP32 model names to quantize: the defaults, the ones asked for, or ``all`` present."""
    from ..engine.quantize import DEFAULT_MODELS, int8_pair

    if not requested:
        return list(DEFAULT_MODELS)
    if "all" in requested:
        return [m.name for m in BUILTIN_MODELS.values()
                if m.int8 and m.path(model_dir).is_file()]
    return list(dict.fromkeys(int8_pair(name)[0].name for name in requested))


def run_quantize(args: argparse.Namespace) -> int:
    """Make the INT8 variants; a ModelError propagates (``ei`` prints it, exit status 1)."""
    from ..engine.quantize import quantize, quiet_nncf

    quiet_nncf()  # its INFO records are per-layer detail
    names = quantize_names(args.models, args.model_dir)
    if not names:
        raise ModelError(f"no built-in model file in {args.model_dir}; run `ei models fetch`")
    start = time.monotonic()
    for name in names:
        t0 = time.monotonic()
        path = quantize(name, args.model_dir, args.sample_dir, frames=args.frames,
                        force=args.force)
        log.info("ok %s (%.1f s)", path, time.monotonic() - t0)
    log.info("%d INT8 models in %s in %.1f s", len(names), args.model_dir,
             time.monotonic() - start)
    return 0


def main(argv: list[str]) -> int:
    from ..engine.quantize import CALIBRATION_FRAMES

    parser = argparse.ArgumentParser(prog="ei models", description=__doc__)
    sub = parser.add_subparsers(dest="action", required=True)
    fetch.build_parser(sub.add_parser("fetch", help="fetch and verify the built-in models"))
    ls = sub.add_parser("list", help="inference types and models")
    ls.add_argument("-d", "--model-dir", type=Path, default=Path("models"))
    q = sub.add_parser("quantize", help="make INT8 variants (<name>-int8) with NNCF",
                       description="Post-training INT8 quantization of built-in models, "
                       "calibrated on frames of the sample videos. Skips a model whose INT8 "
                       "file is up to date.")
    q.add_argument("-d", "--model-dir", type=Path, default=Path("models"),
                   help="where the FP32 models are and the INT8 ones go (default: ./models)")
    q.add_argument("-s", "--sample-dir", type=Path, default=Path("samples"),
                   help="sample videos to calibrate with (default: ./samples)")
    q.add_argument("-m", "--model", dest="models", action="extend", nargs="+", metavar="NAME",
                   help="built-in model(s) to quantize, or 'all' for every one present "
                   "(default: ssd-mobilenetv2-oidv4 blazeface)")
    q.add_argument("--frames", type=int, default=CALIBRATION_FRAMES,
                   help="calibration frames, spread over the sample videos "
                        f"(default: {CALIBRATION_FRAMES})")
    q.add_argument("--force", action="store_true", help="remake even if up to date")
    models_eval.add_parser(sub)
    args = parser.parse_args(argv)
    if args.action == "fetch":
        return fetch.main(argv[1:])
    if args.action == "eval":
        sys.stdout.write(models_eval.run_eval(args) + "\n")
        return 0
    if args.action == "quantize":
        if not logging.getLogger().handlers:
            logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
        return run_quantize(args)
    sys.stdout.write(list_models(args.model_dir) + "\n")
    return 0
