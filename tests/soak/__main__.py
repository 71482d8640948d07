"""``python -m tests.soak [--minutes N] [--out DIR]``: the soak (``make soak``).

Exits 1 when a bound is broken (RSS growth, a job frame lost or duplicated, a fault not
recovered within 10 s), 0 when every bound held.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from pathlib import Path

from .report import plan
from .run import Soak

REPO = Path(__file__).resolve().parents[2]


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="python -m tests.soak", description=__doc__)
    p.add_argument("--minutes", type=float,
                   default=float(os.environ.get("SOAK_MINUTES", "30")),
                   help="length of the soak after the system is up (default $SOAK_MINUTES "
                        "or 30)")
    p.add_argument("--out", type=Path, default=None,
                   help="directory for soak.json, soak.md and ei-up.log "
                        "(default test-artifacts/soak-DATE-TIME)")
    p.add_argument("--fps", type=float, default=5.0,
                   help="frames per second of each sample stream (default 5)")
    p.add_argument("--drain", type=float, default=300.0,
                   help="seconds to wait after the soak for the jobs to finish (default 300)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s soak %(message)s")
    try:
        schedule = plan(args.minutes * 60)
    except ValueError as exc:
        p.error(str(exc))
    out = args.out or REPO / "test-artifacts" / time.strftime("soak-%Y%m%d-%H%M%S")
    out.mkdir(parents=True, exist_ok=True)
    code = Soak(REPO, schedule, out, args.fps, args.drain).run()
    logging.info("report in %s (%s)", out, "PASS" if code == 0 else "FAIL")
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
