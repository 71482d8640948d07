"""A real mosquitto broker on a free loopback port, with a password file (``make mosquitto``
installs Debian's), and a paho subscriber that collects what it receives."""

from __future__ import annotations

import getpass
import shutil
import subprocess
import tempfile
import threading
from pathlib import Path
from urllib.parse import quote

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from tests.processes import listening
from tests.redis_server import free_port

MOSQUITTO = "/usr/sbin/mosquitto"
PASSWD = "/usr/bin/mosquitto_passwd"


class MosquittoServer:
    """mosquitto with anonymous access off and one user; ``url`` carries its credentials."""

    def __init__(self, user: str = "ei-track", password: str = "mqtt-test-password-1234") -> None:
        self.user, self.password = user, password
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="ei-mosquitto-"))
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"mqtt://{quote(self.user)}:{quote(self.password, safe='')}@127.0.0.1:{self.port}"

    def start(self) -> MosquittoServer:
        passwords = self.dir / "passwd"
        passwords.touch(mode=0o600)
        subprocess.run([PASSWD, "-b", str(passwords), self.user, self.password], check=True,
                       capture_output=True)
        config = self.dir / "mosquitto.conf"
        # As root, mosquitto would switch to the "mosquitto" user, who cannot read our files.
        config.write_text(f"user {getpass.getuser()}\n"
                          f"listener {self.port} 127.0.0.1\nallow_anonymous false\n"
                          f"password_file {passwords}\npersistence false\n"
                          f"log_dest file {self.dir / 'log'}\n")
        self.proc = subprocess.Popen([MOSQUITTO, "-c", str(config)], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.STDOUT)
        if not listening(self.port, self.proc, 10):
            raise RuntimeError(f"mosquitto did not start: {self.log()}")
        return self

    def log(self) -> str:
        path = self.dir / "log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
            self.proc = None
        shutil.rmtree(self.dir, ignore_errors=True)


class Subscriber:
    """A paho client subscribed to ``topic``; ``messages`` holds (topic, payload) received."""

    def __init__(self, server: MosquittoServer, topic: str) -> None:
        self.messages: list[tuple[str, bytes]] = []
        self._subscribed = threading.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv311)
        self.client.username_pw_set(server.user, server.password)
        self.client.on_connect = lambda c, *_: c.subscribe(topic, qos=1)
        self.client.on_subscribe = lambda *_: self._subscribed.set()
        self.client.on_message = lambda _c, _u, m: self.messages.append((m.topic, bytes(m.payload)))
        self.client.connect("127.0.0.1", server.port)
        self.client.loop_start()
        if not self._subscribed.wait(10):
            raise RuntimeError("the test subscriber did not subscribe")

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
