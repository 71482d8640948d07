"""The container images, checked without a Docker daemon.

hadolint lints every ``container/*/Dockerfile`` and shellcheck every shell script of the
repository; the Dockerfiles are then read for the project's own rules (exact base versions
given as build arguments, a numeric non-root user, a HEALTHCHECK on ``/healthz``, ``ei
<folder>`` as entrypoint, only the image's extras pinned by the lock, known ``EI_*`` variables,
a build context that holds what they copy); the lock (``constraints.txt``) pins every
requirement of setup.cfg within its range. The build scripts: test_build_scripts.py.
doc/images.md describes the images.
"""

from __future__ import annotations

import configparser
import fnmatch
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from elastic_inference.cli import COMMANDS
from elastic_inference.core.settings import known_env_names
from tests.deploy.dockerfiles import (
    BASE_ARGS,
    CONTAINER,
    DOCKERFILES,
    REPO,
    VENV_EI,
    component,
    copies,
    env_vars,
    final_stage,
    parse_dockerfile,
    pip_targets,
)

pytestmark = pytest.mark.integration

# The lock: every Python dependency at an exact version (`make lock`), for the venv and images.
LOCK = REPO / "constraints.txt"
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
HEALTHCHECK_PATH = "/opt/ei/healthcheck.py"
# IMAGE:X.Y.Z[-variant], optionally with a digest; never a moving tag such as 3.11 or latest.
EXACT_TAG = re.compile(
    r"^[a-z0-9][a-z0-9._/-]*:\d+\.\d+\.\d+[A-Za-z0-9._-]*(@sha256:[0-9a-f]{64})?$")
SHELLS = {"sh", "bash", "dash", "ksh"}
SECRET_NAME = re.compile(r"(?i)(passw|secret|token|api_?key|credential|private)")


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
