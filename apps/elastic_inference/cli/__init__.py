"""The ``ei`` command: one subcommand per service, plus up, status, models, results, auth and
bench.

The command groups of the CLI itself live beside this dispatcher (``status``, ``models`` with
``models_eval``, ``results``, ``auth``; ``table`` is their one table helper); ``bench`` is its
own package.

Each subcommand's module is imported only when chosen, so ``ei gateway`` never loads OpenVINO.
Settings are parsed inside each ``main()``; errors in them exit with status 2 and one line.
"""

from __future__ import annotations

import importlib
import logging
import sys
from collections.abc import Callable, Sequence

from ..core.errors import ConfigError, EIError

log = logging.getLogger(__name__)

#: subcommand -> (module, one-line help). Every module exposes ``main(argv) -> int``.
COMMANDS: dict[str, tuple[str, str]] = {
    "stream": ("elastic_inference.services.stream", "feed a video source into frame queues"),
    "infer": ("elastic_inference.services.infer", "run an inference worker for one type"),
    "analysis": ("elastic_inference.services.analysis", "run analysis jobs (whole videos)"),
    "track": ("elastic_inference.services.track", "track objects, count zones and lines"),
    "websocket": ("elastic_inference.services.websocket", "fan live results out to browsers"),
    "gateway": ("elastic_inference.services.gateway", "serve the REST API and dashboard"),
    "up": ("elastic_inference.services.local", "run the whole system on this machine"),
    "status": ("elastic_inference.cli.status", "print queues, workers and streams"),
    "models": ("elastic_inference.cli.models", "list, fetch or quantize models"),
    "results": ("elastic_inference.cli.results", "prune stored results and job frames"),
    "auth": ("elastic_inference.cli.auth", "add users, create API tokens, list or revoke them"),
    "bench": ("elastic_inference.bench.run", "measure the worker against its limits"),
}


def usage() -> str:
    lines = ["usage: ei COMMAND [options]   (ei COMMAND --help for its options)", "", "commands:"]
    lines += [f"  {name:<10} {text}" for name, (_, text) in COMMANDS.items()]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help", "help"):
        sys.stdout.write(usage() + "\n")
        return 0 if args else 2
    name, rest = args[0], args[1:]
    if name not in COMMANDS:
        sys.stderr.write(f"ei: unknown command {name!r}\n{usage()}\n")
        return 2
    entry: Callable[[list[str]], int] = importlib.import_module(COMMANDS[name][0]).main
    try:
        return entry(rest)
    except ConfigError as exc:
        sys.stderr.write(f"ei {name}: configuration error: {exc}\n")
        return 2
    except EIError as exc:
        sys.stderr.write(f"ei {name}: {exc}\n")
        return 1
