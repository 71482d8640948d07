"""A real HTTP MJPEG camera on loopback, for tests of sources that never end or die."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import cv2

from tests.redis_server import free_port


class MjpegCamera:
    """A real HTTP MJPEG camera on loopback (multipart/x-mixed-replace, as IP cameras serve),
    playing ``clip`` (its first ``limit`` frames, 0 = all) in a loop at ``fps``, without end;
    ``stop()`` kills it mid-stream, ``start()`` brings it back on the same port."""

    def __init__(self, clip: Path, fps: float = 20.0, limit: int = 0) -> None:
        cap = cv2.VideoCapture(str(clip))
        self.jpegs: list[bytes] = []
        self.interval = 1.0 / fps
        while not limit or len(self.jpegs) < limit:
            ok, image = cap.read()
            if not ok:
                break
            self.jpegs.append(cv2.imencode(".jpg", image)[1].tobytes())
        cap.release()
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/video.mjpg"
        self._server: Any = None
        self._thread: threading.Thread | None = None
        self.alive = threading.Event()

    def start(self) -> None:
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        camera = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
                self.end_headers()
                i = 0
                try:
                    while camera.alive.is_set():
                        jpeg = camera.jpegs[i % len(camera.jpegs)]
                        i += 1
                        self.wfile.write(b"--frame\r\nContent-Type: image/jpeg\r\n"
                                         b"Content-Length: %d\r\n\r\n%s\r\n" % (len(jpeg), jpeg))
                        time.sleep(camera.interval)
                except OSError:
                    pass  # the client went away

            def log_message(self, *args: Any) -> None:
                pass

        ThreadingHTTPServer.allow_reuse_address = True
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        self.alive.set()
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Close the listening socket and cut every open connection (a camera power loss)."""
        self.alive.clear()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
