#!/usr/bin/env python3
"""Container HEALTHCHECK of every image: exit 0 when the service's ``/healthz`` answers 200.

Docker (and Podman) run it inside the container; Kubernetes ignores HEALTHCHECK and probes the
same endpoint itself. It finds the metrics server the way the service does: a flag on the
service's command line (``--metrics-port``, ``--metrics-host``; read from ``/proc/1/cmdline``,
the entrypoint's process) wins over ``EI_METRICS_PORT`` / ``EI_METRICS_HOST``, which win over
the defaults (port 8000, all addresses). Standard library only, so it needs nothing from the
service's virtual environment and starts in a few milliseconds.

Exit status: 0 healthy, 1 unhealthy (Docker's meaning; 2 is reserved by Docker).
"""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path

DEFAULT_PORT = "8000"
TIMEOUT_S = 3.0
# A server bound to every address is reached on loopback.
WILDCARD_HOSTS = {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1"}


def flag_value(argv: Sequence[str], flag: str) -> str | None:
    """The value of ``--flag VALUE`` or ``--flag=VALUE`` in ``argv`` (the last one wins)."""
    value = None
    for i, arg in enumerate(argv):
        if arg == flag and i + 1 < len(argv):
            value = argv[i + 1]
        elif arg.startswith(flag + "="):
            value = arg[len(flag) + 1 :]
    return value


def health_url(argv: Sequence[str], environ: Mapping[str, str]) -> str:
    """URL of the service's ``/healthz`` from its command line and environment."""
    port = flag_value(argv, "--metrics-port") or environ.get("EI_METRICS_PORT") or DEFAULT_PORT
    host = flag_value(argv, "--metrics-host") or environ.get("EI_METRICS_HOST", "")
    host = WILDCARD_HOSTS.get(host, host)
    if ":" in host:  # an IPv6 literal
        host = f"[{host}]"
    return f"http://{host}:{port}/healthz"


def service_argv(cmdline: Path = Path("/proc/1/cmdline")) -> list[str]:
    """The arguments of the container's main process; empty where they cannot be read."""
    try:
        raw = cmdline.read_bytes()
    except OSError:
        return []
    return [a.decode(errors="replace") for a in raw.split(b"\0") if a]


def check(url: str, timeout: float = TIMEOUT_S) -> tuple[bool, str]:
    """(healthy, what to print) for one GET of ``url``."""
    if url.rsplit(":", 1)[-1] == "0/healthz":
        return False, "the metrics port is 0 (any free port): set a fixed EI_METRICS_PORT"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return resp.status == 200, f"{url}: {resp.status}"
    except urllib.error.HTTPError as exc:
        return False, f"{url}: {exc.code}"
    except (OSError, ValueError) as exc:
        return False, f"{url}: {exc}"


def main() -> int:
    healthy, message = check(health_url(service_argv(), os.environ))
    print(message, file=sys.stdout if healthy else sys.stderr)  # Docker keeps it in inspect
    return 0 if healthy else 1


if __name__ == "__main__":
    sys.exit(main())
