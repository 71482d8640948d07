"""A real HTTP server on loopback that plays a webhook receiver: it records each POST and
answers a status the test sets; and the signature a receiver would check."""

from __future__ import annotations

import hashlib
import hmac
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from elastic_inference.core.webhook import TIMESTAMP_HEADER


def signature_of(secret: str, headers: dict[str, str], body: bytes) -> str:
    """The ``X-EI-Signature`` a receiver expects: HMAC-SHA256 over ``TIMESTAMP.BODY``."""
    mac = hmac.new(secret.encode(), headers[TIMESTAMP_HEADER].encode() + b"." + body,
                   hashlib.sha256)
    return "sha256=" + mac.hexdigest()


@dataclass
class Receiver:
    """A real HTTP server on loopback: records each POST and answers ``status``."""

    status: int = 200
    posts: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    server: ThreadingHTTPServer | None = None

    def start(self) -> Receiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.posts.append((dict(self.headers), body))
                self.send_response(receiver.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_address[1]}/hooks/ei?site=1"

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
