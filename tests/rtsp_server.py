"""A real RTSP camera on loopback: GStreamer's RTSP server (Debian's, ``make rtsp-server``)
serving H.264 encoded live from a clip, behind a user name and password.

The server runs as a subprocess of the system ``/usr/bin/python3``, which has PyGObject
(python3-gi); the project's virtual environment has not. ``RtspServer`` (imported by the tests)
starts it; run as a script, this file is the server itself. The password reaches the script
through its environment, never its command line.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from urllib.parse import quote

SYSTEM_PYTHON = "/usr/bin/python3"
#: The clip's frames as served: small and slow, so that encoding them costs little CPU.
WIDTH, HEIGHT, FPS = 320, 240, 10
PASSWORD_ENV = "RTSP_TEST_PASSWORD"


class RtspServer:
    """One RTSP server on a fixed loopback port; ``stop()`` kills it (a camera that loses power)
    and ``start()`` brings it back on the same port. ``url`` carries the credentials given,
    which may differ from the server's (``url_with``) to test a wrong password."""

    def __init__(self, clip: Path, user: str = "viewer", password: str = "rtsp-Pa55-w0rd-9731",
                 path: str = "/cam/main", port: int = 0) -> None:
        self.clip, self.user, self.password, self.path = clip, user, password, path
        from tests.redis_server import free_port  # not at the top: the script has no venv

        self.port = port or free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="ei-rtsp-"))
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def url(self) -> str:
        return self.url_with(self.user, self.password)

    def url_with(self, user: str, password: str) -> str:
        return (f"rtsp://{quote(user, safe='')}:{quote(password, safe='')}@127.0.0.1:"
                f"{self.port}{self.path}")

    def start(self, timeout: float = 20.0) -> RtspServer:
        self.starts += 1
        log = (self.dir / f"server-{self.starts}.log").open("wb")
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), PASSWORD_ENV: self.password}
        self.proc = subprocess.Popen(
            [SYSTEM_PYTHON, __file__, "--port", str(self.port), "--path", self.path,
             "--user", self.user, "--clip", str(self.clip.resolve())],
            env=env, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        from tests.processes import listening  # not at the top: the script has no venv

        if not listening(self.port, self.proc, timeout):
            self.stop()
            raise RuntimeError(f"the RTSP server did not start: {self.log()}")
        return self

    def log(self) -> str:
        return "".join(p.read_text(errors="replace") for p in sorted(self.dir.glob("*.log")))

    def stop(self) -> None:
        """SIGKILL: no RTSP teardown, the connections are cut as by a power loss."""
        if self.proc is not None:
            self.proc.send_signal(signal.SIGCONT)  # a frozen one too
            self.proc.kill()
            self.proc.wait(timeout=10)
            self.proc = None

    def freeze(self) -> None:
        """SIGSTOP: connections stay open and silent (a cable cut between camera and pod)."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGCONT)

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


# ----------------------------------------------------------------------------- the server itself


def _serve(port: int, path: str, user: str, password: str, clip: str) -> None:
    import gi

    gi.require_version("Gst", "1.0")
    gi.require_version("GstRtsp", "1.0")
    gi.require_version("GstRtspServer", "1.0")
    from gi.repository import GLib, Gst, GstRtsp, GstRtspServer

    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(str(port))

    factory = GstRtspServer.RTSPMediaFactory()
    location = clip.replace("\\", "\\\\").replace('"', '\\"')
    factory.set_launch(
        f'( filesrc location="{location}" ! decodebin ! videoscale ! videorate ! videoconvert'
        f" ! video/x-raw,width={WIDTH},height={HEIGHT},framerate={FPS}/1,format=I420"
        f" ! x264enc tune=zerolatency speed-preset=ultrafast key-int-max={FPS} bitrate=300"
        f" ! rtph264pay name=pay0 pt=96 config-interval=1 )")
    # Interleaved over the RTSP connection only, as cameras behind NAT or a cluster are read.
    factory.set_protocols(GstRtsp.RTSPLowerTrans.TCP)
    permissions = GstRtspServer.RTSPPermissions()
    permissions.add_permission_for_role("viewer", "media.factory.access", True)
    permissions.add_permission_for_role("viewer", "media.factory.construct", True)
    factory.set_permissions(permissions)
    server.get_mount_points().add_factory(path, factory)

    # Digest: the password never crosses the connection, only a hash of it and a nonce.
    auth = GstRtspServer.RTSPAuth()
    token = GstRtspServer.RTSPToken()
    token.set_string("media.factory.role", "viewer")
    auth.add_digest(user, password, token)
    auth.set_supported_methods(GstRtsp.RTSPAuthMethod.DIGEST)
    server.set_auth(auth)

    if server.attach(None) == 0:
        sys.exit(f"cannot listen on 127.0.0.1:{port}")
    loop = GLib.MainLoop()
    GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, signal.SIGTERM, loop.quit)
    print(f"serving rtsp://127.0.0.1:{port}{path}", flush=True)
    loop.run()


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--path", default="/cam/main")
    parser.add_argument("--user", default="viewer")
    parser.add_argument("--clip", required=True)
    args = parser.parse_args()
    _serve(args.port, args.path, args.user, os.environ[PASSWORD_ENV], args.clip)
