"""The container images and their build script, checked without a Docker daemon.

hadolint lints every ``container/*/Dockerfile`` and shellcheck every shell script of the
repository; the Dockerfiles are then read for the project's own rules (exact base versions
given as build arguments, a numeric non-root user, a HEALTHCHECK on ``/healthz``, ``ei
<folder>`` as entrypoint, only the image's extras pinned by the lock, known ``EI_*`` variables,
a build context that holds what they copy); the lock (``constraints.txt``) pins every
requirement of setup.cfg within its range;
``container/build.sh`` runs in dry-run mode (``-n``); the shared HEALTHCHECK script and the
gateway's SPA guard run for real. doc/images.md describes the images.
"""

from __future__ import annotations

import configparser
import fnmatch
import http.server
import importlib.util
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from elastic_inference.cli import COMMANDS
from elastic_inference.core.settings import CommonSettings, known_env_names
from tests.processes import environment

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
CONTAINER = REPO / "container"
# The lock: every Python dependency at an exact version (`make lock`), for the venv and images.
LOCK = REPO / "constraints.txt"
BUILD_SH = CONTAINER / "build.sh"
DOCKERFILES = sorted(CONTAINER.glob("*/Dockerfile"))
# The linters come with the dev extra, in the environment that runs the tests (.venv/bin).
TOOLS_BIN = Path(sys.executable).parent
SERVICES = ("stream", "infer", "analysis", "track", "websocket", "gateway")
# The extras each image installs; a new image needs its entry here (a deliberate choice).
EXPECTED_EXTRAS: dict[str, set[str]] = {
    "stream": set(),
    "analysis": set(),
    "track": {"track"},
    "infer": {"infer"},
    "websocket": {"web"},
    "gateway": {"web"},
}
VENV_EI = "/opt/ei/venv/bin/ei"
HEALTHCHECK_PATH = "/opt/ei/healthcheck.py"
# IMAGE:X.Y.Z[-variant], optionally with a digest; never a moving tag such as 3.11 or latest.
EXACT_TAG = re.compile(
    r"^[a-z0-9][a-z0-9._/-]*:\d+\.\d+\.\d+[A-Za-z0-9._-]*(@sha256:[0-9a-f]{64})?$")
SHELLS = {"sh", "bash", "dash", "ksh"}
SECRET_NAME = re.compile(r"(?i)(passw|secret|token|api_?key|credential|private)")
# The build arguments that name the bases, so that a stand-in can replace them (make images).
BASE_ARGS = {"PYTHON_BASE": "python:", "NODE_BASE": "node:"}


# ---------------------------------------------------------------------------------------------
# A small Dockerfile reader: enough for the rules below, not a full parser.


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


# ---------------------------------------------------------------------------------------------
# Linters


def run_tool(*args: str) -> subprocess.CompletedProcess[str]:
    tool = TOOLS_BIN / args[0]
    assert tool.is_file(), f"{tool} is missing: pip install -e '.[dev]' installs it"
    return subprocess.run([str(tool), *args[1:]], cwd=REPO, capture_output=True, text=True,
                          check=False, timeout=120)


def test_every_service_has_an_image() -> None:
    assert DOCKERFILES, "no container/*/Dockerfile found"
    names = {component(p) for p in DOCKERFILES}
    assert set(SERVICES) <= names, f"images missing for {set(SERVICES) - names}"
    # One name everywhere: the folder is the `ei` subcommand the image runs.
    assert names <= set(COMMANDS), f"{names - set(COMMANDS)} are not `ei` subcommands"


def test_hadolint_reports_nothing() -> None:
    assert DOCKERFILES, "no container/*/Dockerfile found"
    config = CONTAINER / "hadolint.yaml"
    proc = run_tool("hadolint", "--no-color", "--config", str(config),
                    *(str(p) for p in DOCKERFILES))
    assert proc.returncode == 0 and not proc.stdout.strip(), proc.stdout + proc.stderr


def shell_scripts() -> list[Path]:
    """Every shell script git knows of (tracked, or new and not ignored): ``*.sh``,
    ``.ci/run``, and any file whose shebang names a shell."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=REPO, capture_output=True, check=True,
    ).stdout.decode().split("\0")
    scripts = []
    for name in filter(None, listed):
        path = REPO / name
        if not path.is_file():  # deleted in the work tree but still in the index
            continue
        if name.endswith(".sh") or name == ".ci/run" or shebang_shell(path):
            scripts.append(path)
    return sorted(set(scripts))


def shebang_shell(path: Path) -> bool:
    with open(path, "rb") as fh:
        first = fh.readline(256)
    if not first.startswith(b"#!"):
        return False
    words = first[2:].decode(errors="replace").split()
    if words and words[0].endswith("/env"):
        words = [w for w in words[1:] if not w.startswith("-")]
    return bool(words) and Path(words[0]).name in SHELLS


def test_shell_scripts_are_found() -> None:
    found = {p.relative_to(REPO).as_posix() for p in shell_scripts()}
    expected = {".ci/run", "tools/download-models.sh", "tools/download-samples.sh",
                "container/build.sh", "container/gateway/check-spa.sh",
                "container/stand-in-bases.sh", "container/image-test.sh"}
    assert expected <= found, f"not found: {expected - found}"
    assert "container/healthcheck.py" not in found


def test_shellcheck_reports_nothing() -> None:
    scripts = shell_scripts()
    assert scripts
    proc = run_tool("shellcheck", "--external-sources", "--format=gcc",
                    *(str(p.relative_to(REPO)) for p in scripts))
    assert proc.returncode == 0 and not proc.stdout.strip(), proc.stdout + proc.stderr


# ---------------------------------------------------------------------------------------------
# The images' rules


def test_bases_are_pinned_to_exact_versions() -> None:
    assert DOCKERFILES
    problems = []
    python_bases: set[str] = set()
    node_bases: set[str] = set()
    for path in DOCKERFILES:
        stages = parse_dockerfile(path)
        names: set[str] = set()
        for stage in stages:
            if stage.base in names:
                continue  # built on an earlier stage of this file
            if not EXACT_TAG.match(stage.base) or "latest" in stage.base:
                problems.append(f"{path}: FROM {stage.base} is not an exact version")
            # Through its build argument, so that `make images` can give a stand-in.
            prefix = BASE_ARGS.get(stage.base_arg)
            if prefix is None or not stage.base.startswith(prefix):
                problems.append(f"{path}: FROM {stage.base} is not given by "
                                f"{' or '.join(BASE_ARGS)} (an ARG before the first FROM)")
            (python_bases if stage.base.startswith("python:") else node_bases).add(stage.base)
            if stage.name:
                names.add(stage.name)
        # The venv copied into the final stage points at the python of the stage that built it.
        build = next((s for s in stages if s.name == "build"), None)
        if build is None or build.base != stages[-1].base:
            problems.append(f"{path}: the final stage must use the build stage's base")
        if not re.match(r"^python:3\.\d+\.\d+-slim-bookworm$", stages[-1].base):
            problems.append(f"{path}: final base {stages[-1].base} is not python:3.x.y-slim")
    # One python and one node image for all: shared layers, one version to bump.
    assert len(python_bases) == 1, f"several python bases: {python_bases}"
    assert all(re.match(r"^node:\d+\.\d+\.\d+-bookworm-slim$", b) for b in node_bases), node_bases
    assert len(node_bases) <= 1, f"several node bases: {node_bases}"
    assert not problems, "\n".join(problems)


def test_final_stage_runs_as_a_numeric_non_root_user() -> None:
    assert DOCKERFILES
    for path in DOCKERFILES:
        users = final_stage(path).all("USER")
        assert users, f"{path}: no USER in the final stage"
        match = re.fullmatch(r"(\d+)(?::(\d+))?", users[-1])
        # Numeric, so that Kubernetes' runAsNonRoot can check it without /etc/passwd.
        assert match, f"{path}: USER {users[-1]} is not numeric"
        assert int(match[1]) != 0 and (match[2] is None or int(match[2]) != 0), path


def test_healthcheck_probes_healthz_on_the_metrics_port() -> None:
    assert DOCKERFILES
    for path in DOCKERFILES:
        stage = final_stage(path)
        checks = stage.all("HEALTHCHECK")
        assert len(checks) == 1, f"{path}: {len(checks)} HEALTHCHECKs in the final stage"
        options, _, command = checks[0].partition(" CMD ")
        assert re.search(r"--timeout=\d+s", options), f"{path}: HEALTHCHECK without --timeout"
        argv = json.loads(command)  # the exec form: no shell needed
        assert argv[-1] == HEALTHCHECK_PATH, f"{path}: HEALTHCHECK runs {argv}"
        assert ("", ["container/healthcheck.py"], HEALTHCHECK_PATH) in copies(stage), path
        assert "8000" in " ".join(stage.all("EXPOSE")).split(), f"{path}: metrics port not exposed"


def test_entrypoint_is_the_ei_subcommand_of_the_folder() -> None:
    assert DOCKERFILES
    for path in DOCKERFILES:
        stage = final_stage(path)
        entrypoints = stage.all("ENTRYPOINT")
        assert entrypoints, f"{path}: no ENTRYPOINT"
        assert json.loads(entrypoints[-1]) == [VENV_EI, component(path)], path
        # Kubernetes `args:` replace CMD; a CMD here would be flags that silently disappear.
        assert not stage.all("CMD"), f"{path}: CMD in the final stage"


def test_each_image_installs_the_package_with_only_its_extras() -> None:
    assert DOCKERFILES
    for path in DOCKERFILES:
        name = component(path)
        assert name in EXPECTED_EXTRAS, f"add the extras of the new image {name!r} to the test"
        # A stage named "models" only fetches models (infer: NanoDet is converted there, with
        # the convert extra); its venv never reaches the image (test below).
        runs = [r for stage in parse_dockerfile(path) if stage.name != "models"
                for r in stage.all("RUN")]
        installs = [r for r in runs if pip_targets(r)]
        targets = [t for r in installs for t in pip_targets(r)]
        assert len(targets) == 1, f"{path}: pip installs {targets}; only the package, once"
        match = re.fullmatch(r"\.(?:\[([a-z,]+)\])?", targets[0])
        assert match, f"{path}: pip installs {targets[0]}, not the package from the context"
        extras = set(filter(None, (match[1] or "").split(",")))
        assert extras == EXPECTED_EXTRAS[name], f"{path}: extras {extras}"
        assert "--no-cache-dir" in installs[0], f"{path}: pip without --no-cache-dir"
        assert f"--constraint {LOCK.name}" in installs[0], f"{path}: not pinned by the lock"
        copied = [src for stage in parse_dockerfile(path) for _, srcs, _ in copies(stage)
                  for src in srcs]
        assert LOCK.name in copied, f"{path}: the lock is not copied into the build"


def lock_pins(text: str) -> dict[str, list[tuple[str, str]]]:
    """``{name: [(version, marker), ...]}`` of a lock; every line must be NAME==VERSION."""
    pins: dict[str, list[tuple[str, str]]] = {}
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        req = Requirement(line)
        specs = list(req.specifier)
        assert len(specs) == 1 and specs[0].operator == "==", f"{line!r} is not NAME==VERSION"
        marker = str(req.marker or "")
        entries = pins.setdefault(canonicalize_name(req.name), [])
        assert marker not in [m for _, m in entries], f"{req.name} pinned twice for {marker!r}"
        entries.append((specs[0].version, marker))
    return pins


def test_lock_pins_every_requirement_within_setup_cfg() -> None:
    # Every requirement of every extra (runtime and dev): a package the lock does not name
    # would be installed at whatever version PyPI has that day.
    cfg = configparser.ConfigParser()
    cfg.read(REPO / "setup.cfg")
    wanted = cfg["options"]["install_requires"].split("\n")
    for extra in cfg["options.extras_require"]:
        wanted += cfg["options.extras_require"][extra].split("\n")
    text = LOCK.read_text()
    pins = lock_pins(text)
    for line in filter(None, (w.strip() for w in wanted)):
        req = Requirement(line)
        pinned = pins.get(canonicalize_name(req.name))
        assert pinned, f"{req.name} is not pinned in {LOCK.name}: run `make lock`"
        for version, _ in pinned:
            assert req.specifier.contains(version, prereleases=True), (
                f"{LOCK.name} pins {req.name}=={version}, outside setup.cfg's {req}: "
                "run `make lock`")
    # The build tools are locked too, and the header says how the file was made.
    assert {"pip", "setuptools", "wheel"} <= set(pins)
    assert "make lock" in text.split("\n\n", 1)[0] and "uv pip compile" in text


def test_lock_rejects_what_is_not_an_exact_pin() -> None:
    assert lock_pins("a==1.0\n    # via b\nc==2 ; sys_platform == 'win32'\n") == {
        "a": [("1.0", "")], "c": [("2", 'sys_platform == "win32"')]}
    for bad in ("a>=1.0", "a", "a==1.0\na==1.1"):
        with pytest.raises(AssertionError):
            lock_pins(bad)


def test_makefile_installs_the_venv_from_the_lock() -> None:
    makefile = (REPO / "Makefile").read_text()
    assert re.search(r"^LOCK := constraints\.txt$", makefile, re.M)
    installs = [ln for ln in makefile.splitlines() if "pip install" in ln and "uv==" not in ln]
    assert installs, "no pip install in the Makefile"
    assert all("--constraint $(LOCK)" in ln for ln in installs), installs


def test_environment_variables_are_settings_the_services_know() -> None:
    # A service stops on an EI_* variable it does not know (a typo guard), so an unknown one
    # baked into an image would stop every container started from it.
    assert DOCKERFILES
    known = known_env_names()
    for path in DOCKERFILES:
        for stage in parse_dockerfile(path):
            for key in env_vars(stage):
                assert not key.startswith("EI_") or key in known, f"{path}: ENV {key} unknown"
                assert not SECRET_NAME.search(key), f"{path}: ENV {key} looks like a secret"
            for arg in stage.all("ARG"):
                assert not SECRET_NAME.search(arg), f"{path}: ARG {arg} looks like a secret"


def test_infer_holds_the_models_and_stream_the_samples() -> None:
    infer = final_stage(CONTAINER / "infer" / "Dockerfile")
    assert env_vars(infer)["EI_MODEL_DIR"] == "/opt/ei/models"
    assert "/opt/ei/models" in [dest for _, _, dest in copies(infer)]
    models = next(s for s in parse_dockerfile(CONTAINER / "infer" / "Dockerfile")
                  if s.name == "models")
    # Fetched by the project's verifying script, never copied unverified from the context.
    assert any("tools/download-models.sh -d /opt/ei/models" in r for r in models.all("RUN"))
    # Converting NanoDet needs the convert extra (tensorboard) in that stage only: the image
    # takes its venv from the build stage, which installs the infer extra alone.
    assert [pip_targets(r) for r in models.all("RUN") if pip_targets(r)] == [[".[infer,convert]"]]
    assert ("build", ["/opt/ei/venv"], "/opt/ei/venv") in copies(infer)
    stream = final_stage(CONTAINER / "stream" / "Dockerfile")
    assert "/opt/ei/samples" in [dest for _, _, dest in copies(stream)]


def test_labels_name_the_image() -> None:
    assert DOCKERFILES
    for path in DOCKERFILES:
        labels = " ".join(final_stage(path).all("LABEL"))
        title = re.search(r'org\.opencontainers\.image\.title="([^"]*)"', labels)
        assert title and title[1] == f"ei-{component(path)}", f"{path}: title label"
        # The base actually built on, stand-in or not (the argument is redeclared to be seen).
        assert 'org.opencontainers.image.base.name="${PYTHON_BASE}"' in labels, path
        assert "PYTHON_BASE" in final_stage(path).all("ARG"), path


def test_gateway_builds_the_spa_in_a_node_stage() -> None:
    stages = parse_dockerfile(CONTAINER / "gateway" / "Dockerfile")
    spa = next(s for s in stages if s.name == "spa")
    assert spa.base.startswith("node:")
    runs = " ".join(spa.all("RUN"))
    assert runs.index("check-spa.sh sources") < runs.index("npm ci") < runs.index("npm run build")
    assert ("spa", ["/src/spa/dist"], "/opt/ei/spa") in copies(stages[-1])


# ---------------------------------------------------------------------------------------------
# The build context (.dockerignore)


def dockerignore_excludes(path: str, patterns: list[str]) -> bool:
    """Docker's rule, simplified: the last matching pattern wins and ``!`` re-includes; a
    pattern that matches a folder covers what is inside it; ``**/`` matches at any depth."""
    parts = path.split("/")
    prefixes = ["/".join(parts[:j]) for j in range(1, len(parts) + 1)]
    anywhere = ["/".join(parts[i:j])
                for i in range(len(parts)) for j in range(i + 1, len(parts) + 1)]
    excluded = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        body = pattern.removeprefix("!").rstrip("/")
        candidates = anywhere if body.startswith("**/") else prefixes
        if any(fnmatch.fnmatchcase(c, body.removeprefix("**/")) for c in candidates):
            excluded = not negate
    return excluded


def dockerignore() -> list[str]:
    lines = (REPO / ".dockerignore").read_text().splitlines()
    return [ln.strip() for ln in lines if ln.strip() and not ln.strip().startswith("#")]


def test_build_context_holds_what_the_dockerfiles_copy() -> None:
    patterns = dockerignore()
    assert patterns[0] == "*", ".dockerignore should be an allow-list starting with '*'"
    assert DOCKERFILES
    for path in DOCKERFILES:
        for stage in parse_dockerfile(path):
            for source_stage, sources, _ in copies(stage):
                if source_stage:
                    continue
                for src in sources:
                    assert not dockerignore_excludes(src.rstrip("/"), patterns), (
                        f"{path}: COPY {src}, but .dockerignore leaves it out of the context")
                    # spa/ arrives with the dashboard; until then the gateway's guard reports it.
                    if not src.startswith("spa/"):
                        assert (REPO / src).exists(), f"{path}: COPY {src}: no such file"


@pytest.mark.parametrize("path", [
    ".git/config", ".venv/bin/python", "models/blazeface-int8.bin", "samples/vtest.avi",
    ".env", "secrets/key.pem", "spa/node_modules/vue/index.js", "spa/dist/index.html",
    "apps/elastic_inference/__pycache__/cli.cpython-311.pyc", "apps/elastic_inference.egg-info",
    "tests/conftest.py", "test-artifacts/log.txt", ".cache/samples/opencv-doc.deb",
])
def test_build_context_leaves_out(path: str) -> None:
    assert dockerignore_excludes(path, dockerignore())


# ---------------------------------------------------------------------------------------------
# container/build.sh, dry run (-n)

REGISTRY = "registry.example.com/team"
TAG = "1.2.3"


def build_sh(*args: str, script: Path = BUILD_SH,
             env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if k not in ("DOCKER", "SOURCE_DATE_EPOCH")}
    return subprocess.run(["bash", str(script), *args], capture_output=True, text=True,
                          check=False, timeout=60, env={**base, **(env or {})})


def package_version() -> str:
    cfg = configparser.ConfigParser()
    cfg.read(REPO / "setup.cfg")
    return cfg["metadata"]["version"]


def commands(stdout: str) -> list[list[str]]:
    return [shlex.split(line) for line in stdout.splitlines() if line.strip()]


def option(argv: list[str], name: str) -> list[str]:
    return [argv[i + 1] for i, a in enumerate(argv[:-1]) if a == name]


def test_build_sh_dry_run_builds_one_image_per_folder() -> None:
    proc = build_sh("-n", "-r", REGISTRY + "/", "-c", "all", "-g", TAG)
    assert proc.returncode == 0, proc.stderr
    builds = commands(proc.stdout)
    assert all(c[:2] == ["docker", "build"] for c in builds), proc.stdout
    assert len(builds) == len(DOCKERFILES)
    for argv, dockerfile in zip(builds, DOCKERFILES, strict=True):
        name = component(dockerfile)
        assert option(argv, "--file") == [str(dockerfile)]
        assert option(argv, "--tag") == [f"{REGISTRY}/ei-{name}:{TAG}"]
        assert f"VERSION={package_version()}" in option(argv, "--build-arg")
        assert argv[-1] == str(REPO), "the build context is the repository root"


def test_build_sh_dry_run_builds_only_the_chosen_component() -> None:
    proc = build_sh("-n", "-r", REGISTRY, "-c", "infer", "-g", TAG)
    assert proc.returncode == 0, proc.stderr
    builds = commands(proc.stdout)
    assert len(builds) == 1
    assert option(builds[0], "--tag") == [f"{REGISTRY}/ei-infer:{TAG}"]
    assert option(builds[0], "--file") == [str(CONTAINER / "infer" / "Dockerfile")]


def test_build_sh_all_builds_everything_before_pushing(tmp_path: Path) -> None:
    proc = build_sh("-n", "-r", REGISTRY, "-a", "all", "-c", "stream,gateway", "-g", TAG,
                    "-o", str(tmp_path), "--", "--platform", "linux/arm64")
    assert proc.returncode == 0, proc.stderr
    got = [(c[1], c[-1]) for c in commands(proc.stdout)]
    stream, gateway = (f"{REGISTRY}/ei-{c}:{TAG}" for c in ("stream", "gateway"))
    assert got == [("build", str(REPO)), ("build", str(REPO)), ("push", stream),
                   ("push", gateway), ("save", stream), ("save", gateway)]
    build, save = commands(proc.stdout)[0], commands(proc.stdout)[4]
    assert option(build, "--platform") == ["linux/arm64"], "arguments after -- go to build"
    assert option(save, "--output") == [str(tmp_path / f"ei-stream-{TAG}.tar")]
    assert not any(tmp_path.iterdir()), "a dry run writes nothing"


def test_build_sh_uses_the_docker_variable_and_source_date_epoch() -> None:
    proc = build_sh("-n", "-r", REGISTRY, "-c", "websocket",
                    env={"DOCKER": "podman", "SOURCE_DATE_EPOCH": "0"})
    assert proc.returncode == 0, proc.stderr
    (argv,) = commands(proc.stdout)
    assert argv[:2] == ["podman", "build"]
    assert "CREATED=1970-01-01T00:00:00Z" in option(argv, "--build-arg")
    # The default tag is latest, as tools/gen-k8s-yaml.sh's.
    assert option(argv, "--tag") == [f"{REGISTRY}/ei-websocket:latest"]


@pytest.mark.parametrize(("args", "message"), [
    (["-c", "infer"], "missing -r REGISTRY"),
    (["-r", REGISTRY, "-c", "nope"], "unknown component 'nope'; known components: "),
    (["-r", REGISTRY, "-c", "infer,nope"], "unknown component 'nope'"),
    (["-r", REGISTRY, "-a", "deploy"], "unknown action 'deploy'"),
    (["-r", REGISTRY, "-g", "bad tag"], "invalid tag 'bad tag'"),
    (["-r", "Not A Registry"], "invalid registry"),
    (["-r", REGISTRY, "leftover"], "unexpected argument: leftover"),
    (["-r", REGISTRY, "-x"], "unknown option -x"),
    (["-r"], "-r needs a value"),
])
def test_build_sh_rejects_bad_arguments(args: list[str], message: str) -> None:
    proc = build_sh("-n", *args)
    assert proc.returncode != 0
    assert message in proc.stderr, proc.stderr
    assert not proc.stdout.strip(), "nothing is run or printed as a command"


def test_build_sh_unknown_component_lists_the_known_ones() -> None:
    proc = build_sh("-n", "-r", REGISTRY, "-c", "nope")
    known = proc.stderr.split("known components: ", 1)[1].split(" (or all)")[0].split()
    assert known == [component(p) for p in DOCKERFILES]


def test_build_sh_help() -> None:
    proc = build_sh("-h")
    assert proc.returncode == 0
    assert proc.stdout.startswith("usage: build.sh -r REGISTRY")
    assert " ".join(component(p) for p in DOCKERFILES) in proc.stdout


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@example.com",
                           "-c", "commit.gpgsign=false", *args], cwd=cwd, check=True,
                          capture_output=True, text=True).stdout.strip()


def test_build_sh_finds_images_by_folder_and_keeps_credentials_out(tmp_path: Path) -> None:
    (tmp_path / "container").mkdir()
    shutil.copy(BUILD_SH, tmp_path / "container" / "build.sh")
    for name in ("beta", "alpha"):
        (tmp_path / "container" / name).mkdir()
        (tmp_path / "container" / name / "Dockerfile").write_text("FROM scratch\n")
    (tmp_path / "container" / "notes").mkdir()  # a folder without a Dockerfile is no image
    git(tmp_path, "init", "-q")
    git(tmp_path, "add", ".")
    git(tmp_path, "commit", "-q", "-m", "images")
    git(tmp_path, "remote", "add", "origin", "https://user:s3cret@git.example.com/ei.git")
    script = tmp_path / "container" / "build.sh"

    proc = build_sh("-n", "-r", REGISTRY, "-g", TAG, script=script)
    assert proc.returncode == 0, proc.stderr
    builds = commands(proc.stdout)
    assert [option(b, "--tag")[0] for b in builds] == [
        f"{REGISTRY}/ei-alpha:{TAG}", f"{REGISTRY}/ei-beta:{TAG}"]
    build_args = option(builds[0], "--build-arg")
    assert "SOURCE=https://git.example.com/ei.git" in build_args
    assert f"REVISION={git(tmp_path, 'rev-parse', 'HEAD')}" in build_args
    assert "s3cret" not in proc.stdout + proc.stderr

    (tmp_path / "container" / "alpha" / "Dockerfile").write_text("FROM scratch\nUSER 1\n")
    proc = build_sh("-n", "-r", REGISTRY, "-c", "alpha", script=script)
    assert any(a.endswith("-dirty") for a in option(commands(proc.stdout)[0], "--build-arg"))

    for name in ("alpha", "beta"):
        (tmp_path / "container" / name / "Dockerfile").unlink()
    proc = build_sh("-n", "-r", REGISTRY, script=script)
    assert proc.returncode != 0 and "no container/*/Dockerfile found" in proc.stderr


# ---------------------------------------------------------------------------------------------
# The shared HEALTHCHECK script and the gateway's SPA guard, run for real


def load_healthcheck() -> ModuleType:
    spec = importlib.util.spec_from_file_location("ei_healthcheck", CONTAINER / "healthcheck.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_healthcheck_finds_the_metrics_server_like_the_service() -> None:
    hc = load_healthcheck()
    # The script's defaults and names are the service's own.
    assert int(hc.DEFAULT_PORT) == CommonSettings.metrics_port == 8000
    assert {"EI_METRICS_PORT", "EI_METRICS_HOST"} <= known_env_names()
    ei = [VENV_EI, "infer", "--type", "face"]
    assert hc.health_url(ei, {}) == "http://127.0.0.1:8000/healthz"
    assert hc.health_url(ei, {"EI_METRICS_PORT": "9100"}) == "http://127.0.0.1:9100/healthz"
    # A flag wins over the variable, as in the service; `docker run --init` keeps the flags.
    tini = ["/sbin/docker-init", "--", *ei, "--metrics-port", "9200"]
    assert hc.health_url(tini, {"EI_METRICS_PORT": "9100"}) == "http://127.0.0.1:9200/healthz"
    assert hc.health_url([*ei, "--metrics-port=9300"], {}) == "http://127.0.0.1:9300/healthz"
    assert hc.health_url(ei, {"EI_METRICS_HOST": "::"}) == "http://[::1]:8000/healthz"
    assert hc.health_url(ei, {"EI_METRICS_HOST": "10.1.2.3"}) == "http://10.1.2.3:8000/healthz"
    healthy, message = hc.check(hc.health_url(ei, {"EI_METRICS_PORT": "0"}))
    assert not healthy and "EI_METRICS_PORT" in message


class HealthServer(http.server.ThreadingHTTPServer):
    status = 200


class HealthHandler(http.server.BaseHTTPRequestHandler):
    server: HealthServer

    def do_GET(self) -> None:
        self.send_response(self.server.status if self.path == "/healthz" else 404)
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def health_server() -> Iterator[HealthServer]:
    server = HealthServer(("127.0.0.1", 0), HealthHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def run_healthcheck(port: int) -> subprocess.CompletedProcess[str]:
    env = environment(EI_METRICS_PORT=str(port))
    return subprocess.run([sys.executable, "-I", str(CONTAINER / "healthcheck.py")], env=env,
                          capture_output=True, text=True, check=False, timeout=30)


def test_healthcheck_exit_status(health_server: HealthServer) -> None:
    port = health_server.server_address[1]
    assert run_healthcheck(port).returncode == 0
    health_server.status = 503
    proc = run_healthcheck(port)
    assert proc.returncode == 1 and "503" in proc.stderr
    health_server.shutdown()
    health_server.server_close()
    assert run_healthcheck(port).returncode == 1  # nothing listening


def test_gateway_spa_guard_names_what_is_missing(tmp_path: Path) -> None:
    guard = CONTAINER / "gateway" / "check-spa.sh"

    def run(step: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["bash", str(guard), step], cwd=tmp_path, capture_output=True,
                              text=True, check=False, timeout=30)

    proc = run("sources")
    assert proc.returncode == 1
    assert "spa/package.json spa/package-lock.json missing" in proc.stderr
    (tmp_path / "package.json").write_text("{}")
    assert "spa/package-lock.json missing" in run("sources").stderr
    (tmp_path / "package-lock.json").write_text("{}")
    assert run("sources").returncode == 0
    assert run("dist").returncode == 1
    (tmp_path / "dist").mkdir()
    (tmp_path / "dist" / "index.html").write_text("<!doctype html>")
    assert run("dist").returncode == 0
    assert run("other").returncode == 1


# ---------------------------------------------------------------------------------------------
# make images / make image-test (the builds themselves are not part of make test: doc/images.md)


@pytest.mark.parametrize("script", ["image-test.sh", "stand-in-bases.sh"])
def test_image_scripts_answer_help_and_refuse_bad_arguments(script: str) -> None:
    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["bash", str(CONTAINER / script), *args], capture_output=True,
                              text=True, check=False, timeout=60)

    proc = run("-h")
    assert proc.returncode == 0 and proc.stdout.startswith(f"usage: {script}"), proc.stderr
    for bad in (["-x"], ["leftover"]):
        proc = run(*bad)
        assert proc.returncode == 2 and proc.stderr.strip(), (bad, proc.stderr)
        assert not proc.stdout.strip(), "nothing ran"


def test_make_images_builds_on_the_stand_ins_with_build_sh() -> None:
    script = (CONTAINER / "image-test.sh").read_text()
    stand_ins = (CONTAINER / "stand-in-bases.sh").read_text()
    for arg in BASE_ARGS:
        name = re.search(rf'^{arg.replace("_BASE", "")}_STAND_IN=(\S+)$', script, re.M)
        assert name, f"image-test.sh names no stand-in for {arg}"
        assert f"{arg.replace('_BASE', '')}_STAND_IN={name[1]}" in stand_ins
        assert f'"{arg}=${arg.replace("_BASE", "")}_STAND_IN"' in script
    assert 'DOCKER=buildah "$container_dir/build.sh"' in script
    # The stand-ins follow the real bases: the same Node release, the same Python minor.
    defaults = {name: value for path in DOCKERFILES for name, value in global_args(path).items()}
    node = re.search(r"^NODE_VERSION=(\S+)$", stand_ins, re.M)
    assert node and defaults["NODE_BASE"] == f"node:{node[1]}-bookworm-slim", defaults
    python = re.search(r"python:(\d+\.\d+)\.\d+-slim", defaults["PYTHON_BASE"])
    assert python and f"ei-stand-in-python:{python[1]}-bookworm" in stand_ins
    assert f"/usr/bin/python{python[1]}" in stand_ins
    makefile = (REPO / "Makefile").read_text()
    assert re.search(r"^image-test:.*\n\t.*container/image-test\.sh$", makefile, re.M)
    assert re.search(r"^images:.*\n\t.*container/image-test\.sh -b$", makefile, re.M)
    assert not re.search(r"^test:.*image", makefile, re.M), "make test stays daemon-free"
