"""The images' build and test scripts and what runs inside the images, without a Docker
daemon: ``container/build.sh`` in dry-run mode (``-n``), the shared HEALTHCHECK script and the
gateway's SPA guard run for real, and ``make images`` / ``make image-test``'s scripts.
doc/images.md describes the images.
"""

from __future__ import annotations

import configparser
import http.server
import importlib.util
import os
import re
import shlex
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from elastic_inference.core.settings import CommonSettings, known_env_names
from tests.deploy.dockerfiles import (
    BASE_ARGS,
    BUILD_SH,
    CONTAINER,
    DOCKERFILES,
    REPO,
    VENV_EI,
    component,
    global_args,
)
from tests.processes import environment

pytestmark = pytest.mark.integration


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
