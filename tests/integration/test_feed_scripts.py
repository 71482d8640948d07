"""tools/run-fss.sh and tools/run-css.sh: feed a remote system's queues; bad options are refused."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import redis

from elastic_inference.core import acl, keys
from tests.conftest import REPO
from tests.processes import environment
from tests.redis_server import ROOT_USER, RedisServer, start_with_aclfile

pytestmark = pytest.mark.integration

FSS = REPO / "tools" / "run-fss.sh"
CSS = REPO / "tools" / "run-css.sh"
PASSWORD = "s3cret w/ @:"  # characters that must be percent-encoded inside a URL


def run(script: Path, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = environment()
    return subprocess.run([str(script), *args], capture_output=True, text=True, env=env,
                          timeout=timeout, check=False)


@pytest.fixture
def password_file(tmp_path: Path) -> Path:
    path = tmp_path / "redis-password"
    path.write_text(PASSWORD + "\n")
    return path


def test_run_fss_feeds_every_type_as_the_producer_user(sample_dir: Path, tmp_path: Path) -> None:
    """The Redis of a deployment: ACL users only, the default user off; the script logs in as
    ei-stream, which may push and register, nothing else (core/acl.py)."""
    stream, ops, root = "Stream.Password-0123456789", "Ops.Password-0123456789", "Root-0123456789"
    server = start_with_aclfile(acl.aclfile({"stream": stream, "ops": ops}), tmp_path,
                                ("ei-ops", ops), root)
    (tmp_path / "stream-password").write_text(stream + "\n")
    try:
        done = run(FSS, "-f", str(sample_dir / "vtest.avi"), "-q", "127.0.0.1",
                   "-p", str(server.port), "-a", str(tmp_path / "stream-password"),
                   "-t", "people,face", "-i", "fss-test", "-r", "50", "--", "--max-frames", "12",
                   "--metrics-port", "0")
        assert done.returncode == 0, done.stderr[-2000:]
        client = redis.Redis(port=server.port, username=ROOT_USER, password=root)
        for t in ("people", "face"):
            assert int(client.hget(keys.queue_stats(t), "pushed") or 0) == 12
        assert client.acl_log() == []
        assert stream not in done.stdout + done.stderr
        assert "redis://ei-stream:***@127.0.0.1" in done.stderr
    finally:
        server.stop()


def test_run_fss_feeds_every_type_of_a_redis_with_a_password_only(
        sample_dir: Path, password_file: Path) -> None:
    server = RedisServer(password=PASSWORD).start()
    try:
        done = run(FSS, "-f", str(sample_dir / "vtest.avi"), "-q", "127.0.0.1", "-u", "default",
                   "-p", str(server.port), "-a", str(password_file), "-t", "people,face",
                   "-i", "fss-test", "-r", "50", "--", "--max-frames", "12",
                   "--metrics-port", "0")
        assert done.returncode == 0, done.stderr[-2000:]
        client = redis.Redis.from_url(server.url)
        for t in ("people", "face"):
            assert int(client.hget(keys.queue_stats(t), "pushed") or 0) == 12
            assert client.llen(keys.queue(t)) == 12
        assert PASSWORD not in done.stdout + done.stderr
        assert "redis://default:***@127.0.0.1" in done.stderr
    finally:
        server.stop()


def test_the_dry_run_masks_the_password_and_uses_tls_and_the_ca(
        sample_dir: Path, password_file: Path, tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    shown = run(FSS, "-n", "-f", str(sample_dir / "vtest.avi"), "-q", "redis.example.com",
                "-a", str(password_file), "-s", "-C", str(ca))
    assert shown.returncode == 0, shown.stderr
    line = shown.stdout.strip()
    assert line.startswith("EI_REDIS_URL=rediss://ei-stream:\\*\\*\\*@redis.example.com:6379/0")
    assert f"ssl_ca_certs={ca}" in line.replace("\\", "")
    assert "s3cret" not in line and " stream --source " in line


def test_the_image_mode_mounts_the_file_read_only(sample_dir: Path) -> None:
    shown = run(FSS, "-n", "-f", str(sample_dir / "vtest.avi"), "-q", "10.0.0.5",
                "-D", "registry.example.com/ei-stream:1.0")
    assert shown.returncode == 0, shown.stderr
    assert (f"-v {sample_dir / 'vtest.avi'}:/input/video:ro registry.example.com/ei-stream:1.0 "
            "--source /input/video") in shown.stdout


@pytest.mark.parametrize(("script", "args", "message"), [
    (CSS, ["-v", "/dev/video97", "-q", "h"], "no webcam /dev/video97"),
    (CSS, ["-v", "/etc/passwd", "-q", "h"], "use /dev/videoN or N"),
    (FSS, ["-f", "/nonexistent.avi", "-q", "h"], "no such video file"),
    (FSS, ["-f", "{video}"], "-q HOST is required"),
    (FSS, ["-f", "{video}", "-q", "h;rm"], "not a host name"),
    (FSS, ["-f", "{video}", "-q", "h", "-p", "70000"], "not a port number"),
    (FSS, ["-f", "{video}", "-q", "h", "-t", "People!"], "comma-separated type names"),
    (FSS, ["-f", "{video}", "-q", "h", "-i", "bad id"], "a stream id is"),
    (FSS, ["-f", "{video}", "-q", "h", "-a", "/nonexistent"], "cannot read the password file"),
    (FSS, ["-f", "{video}", "-q", "h", "-u", "ei stream"], "a Redis user name is"),
    (FSS, ["-f", "{video}", "-q", "h", "-C", "{video}"], "-C needs -s"),
    (FSS, ["-f", "{video}", "-q", "h", "-x"], "unknown option -x"),
    (FSS, ["-f", "{video}", "-q"], "-q needs a value"),
])
def test_bad_options_exit_2_with_a_message(script: Path, args: list[str], message: str,
                                            sample_dir: Path) -> None:
    video = str(sample_dir / "vtest.avi")
    done = run(script, "-n", *[a.replace("{video}", video) for a in args])
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert message in done.stderr and not done.stdout


def test_help_names_every_option() -> None:
    for script, source in ((CSS, "-v DEVICE"), (FSS, "-f FILE")):
        done = run(script, "-h")
        assert done.returncode == 0
        assert source in done.stdout
        for flag in ("-q HOST", "-p PORT", "-u USER", "-a FILE", "-s ", "-C CA_FILE", "-D IMAGE"):
            assert flag in done.stdout, (script.name, flag)
