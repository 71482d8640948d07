"""``ei models``: ``fetch`` the built-in models (as tools/download-models.sh does) or ``list``
the registry: inference types, their models and whether each model file is present."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .engine import fetch
from .engine.models import BUILTIN_MODELS, INFER_TYPES
from .status import table


def list_models(model_dir: Path) -> str:
    types = [(t.name, t.model, ",".join(t.labels) if t.labels else "(all)", t.description)
             for t in INFER_TYPES.values()]
    models = [(m.name, m.file, f"{m.input_w}x{m.input_h}", m.threshold,
               "yes" if (model_dir / m.file).is_file() else "no — run ei models fetch")
              for m in BUILTIN_MODELS.values()]
    return ("TYPES\n" + table(types, ("type", "model", "labels", "what")) + "\n\nMODELS\n"
            + table(models, ("model", "file", "input", "threshold", "present")))


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="ei models", description=__doc__)
    sub = parser.add_subparsers(dest="action", required=True)
    fetch.build_parser(sub.add_parser("fetch", help="fetch and verify the built-in models"))
    ls = sub.add_parser("list", help="inference types and models")
    ls.add_argument("-d", "--model-dir", type=Path, default=Path("models"))
    args = parser.parse_args(argv)
    if args.action == "fetch":
        return fetch.main(argv[1:])
    sys.stdout.write(list_models(args.model_dir) + "\n")
    return 0
