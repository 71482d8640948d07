"""The container images' files as the deploy tests read them: where they are, and a small
Dockerfile reader (enough for the project's rules, not a full parser)."""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CONTAINER = REPO / "container"
BUILD_SH = CONTAINER / "build.sh"
DOCKERFILES = sorted(CONTAINER.glob("*/Dockerfile"))
VENV_EI = "/opt/ei/venv/bin/ei"
# The build arguments that name the bases, so that a stand-in can replace them (make images).
BASE_ARGS = {"PYTHON_BASE": "python:", "NODE_BASE": "node:"}


@dataclass
class Stage:
    """One ``FROM`` and the instructions up to the next one; ``base`` with the build arguments
    declared before the first ``FROM`` replaced by their defaults, ``base_arg`` the argument
    it was given by (or "")."""

    base: str
    name: str
    base_arg: str = ""
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def all(self, keyword: str) -> list[str]:
        return [args for kw, args in self.instructions if kw == keyword]


def logical_lines(text: str) -> Iterator[str]:
    """Instructions with their continuation lines joined; comments and blank lines dropped."""
    buf = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue  # Docker also drops comment lines inside a continued instruction
        if line.endswith("\\"):
            buf += line[:-1] + " "
            continue
        yield buf + line
        buf = ""
    if buf:
        yield buf


def global_args(path: Path) -> dict[str, str]:
    """``ARG NAME=DEFAULT`` lines before the first ``FROM``: the arguments a ``FROM`` may use."""
    out: dict[str, str] = {}
    for line in logical_lines(path.read_text()):
        keyword, _, args = line.partition(" ")
        if keyword.upper() == "FROM":
            break
        name, _, default = args.strip().partition("=")
        out[name] = default
    return out


def parse_dockerfile(path: Path) -> list[Stage]:
    stages: list[Stage] = []
    defaults = global_args(path)
    for line in logical_lines(path.read_text()):
        keyword, _, args = line.partition(" ")
        keyword, args = keyword.upper(), args.strip()
        if keyword == "FROM":
            words = args.split()
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else ""
            arg = re.fullmatch(r"\$\{(\w+)\}|\$(\w+)", words[0])
            base_arg = (arg[1] or arg[2]) if arg else ""
            if base_arg:
                assert base_arg in defaults, f"{path}: FROM {words[0]} without a global ARG"
            base = defaults[base_arg] if base_arg else words[0]
            stages.append(Stage(base=base, name=name, base_arg=base_arg))
        elif not stages:
            assert keyword == "ARG", f"{path}: {keyword} before the first FROM"
        else:
            stages[-1].instructions.append((keyword, args))
    assert stages, f"{path} has no FROM"
    return stages


def component(path: Path) -> str:
    return path.parent.name


def final_stage(path: Path) -> Stage:
    return parse_dockerfile(path)[-1]


def env_vars(stage: Stage) -> dict[str, str]:
    """``ENV KEY=VALUE ...`` of a stage (the form these Dockerfiles use)."""
    out: dict[str, str] = {}
    for args in stage.all("ENV"):
        for word in shlex.split(args):
            key, sep, value = word.partition("=")
            assert sep, f"ENV {args!r}: use the KEY=VALUE form"
            out[key] = value
    return out


def copies(stage: Stage) -> list[tuple[str, list[str], str]]:
    """``(from_stage, sources, destination)`` for each COPY of a stage."""
    out = []
    for args in stage.all("COPY"):
        words = shlex.split(args)
        flags = [w for w in words if w.startswith("--")]
        paths = [w for w in words if not w.startswith("--")]
        source = next((f.split("=", 1)[1] for f in flags if f.startswith("--from=")), "")
        out.append((source, paths[:-1], paths[-1]))
    return out


def pip_targets(run: str) -> list[str]:
    """What each ``pip install`` of a RUN installs (option values left out)."""
    words = shlex.split(run)
    targets: list[str] = []
    for i, word in enumerate(words[:-1]):
        if not (word.endswith("/pip") or word == "pip") or words[i + 1] != "install":
            continue
        rest = iter(words[i + 2 :])
        for arg in rest:
            if arg in ("&&", "||", ";"):
                break
            if arg in ("-c", "--constraint", "-r", "--requirement"):
                next(rest, None)
            elif not arg.startswith("-"):
                targets.append(arg)
    return targets
