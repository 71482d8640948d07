"""What one frame costs in bytes: written to Redis, and sent to one websocket viewer.

Redis: the bench's own writes, as a stream service and its workers make them (the JPEG once in
``ei:frames:{stream}``, a v2 reference in each type's queue, each type's result in
``ei:out:{stream}`` with the frame's ref and in ``ei:results:{stream}``), counted as the growth
of redis-server's ``total_net_input_bytes`` (the commands as they cross the wire, protocol
included) while nothing else talks to it. The design before the frame store (the JPEG in every
queue message and every ``ei:out`` entry) is written the same way for comparison.

Websocket: a real ``ei websocket`` (``--no-auth``, loopback) and one client subscribed to the
stream; every message it receives for the stream (binary: a frame's JPEG with one result;
text: another type's result), with its websocket frame header (the service sends
uncompressed), divided by the frames published.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, replace

import redis
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection
from websockets.sync.client import connect as ws_connect

from ..core import frame as frame_msg
from ..core import keys
from ..core.broker import OutputBroker
from ..core.errors import EIError
from ..core.framestore import DEFAULT_KEEP, FrameStore, store_length
from ..core.live import WS_PATH
from ..core.queue import FrameQueue, push_to_types
from ..core.registry import StreamRegistry
from ..core.result import Result

log = logging.getLogger(__name__)

#: The types a frame is fed to in the three-type row (each type's result is the same real
#: result with its type renamed: its size, not its boxes, matters here).
THREE_TYPES = ("people", "face", "car")
FPS = 15.0  # the stream's pace for the websocket phase
START_TIMEOUT = 30.0


@dataclass(frozen=True)
class StorageFigure:
    """Bytes per frame for a stream feeding ``types`` types (means over ``frames`` frames)."""

    types: int
    frames: int
    jpeg: float
    frame_store: float
    queues: float
    outputs: float  # ei:out and ei:results entries, as the workers publish them
    before: float  # JPEG in every queue message and ei:out entry, results as now
    websocket: float  # 0 when not measured
    ws_messages: float

    @property
    def redis(self) -> float:
        return self.frame_store + self.queues + self.outputs

    @property
    def ratio(self) -> float:
        return self.redis / self.jpeg if self.jpeg else 0.0


def _input_bytes(client: redis.Redis) -> int:
    return int(client.info("stats")["total_net_input_bytes"])


class _Writes:
    """Writes frames and results as a stream and its workers do, and counts their bytes."""

    def __init__(self, client: redis.Redis, stream: str, types: Sequence[str],
                 size: tuple[int, int]) -> None:
        self.client, self.stream, self.types, self.size = client, stream, list(types), size
        self.store = FrameStore(client)
        self.broker = OutputBroker(client)
        self.queues = [FrameQueue(client, t) for t in self.types]
        self.keep = store_length(FPS, DEFAULT_KEEP)
        # Each count includes the INFO command that reads it: measured once, taken off.
        self.info_bytes = 0
        self.info_bytes = self._measured(lambda: None)

    def _measured(self, write: Callable[[], object]) -> int:
        before = _input_bytes(self.client)
        write()
        return _input_bytes(self.client) - before - self.info_bytes

    def frame(self, seq: int, jpeg: bytes, results: Sequence[Result],
              old: bool = False) -> tuple[int, int, int]:
        """Write one frame; its (frame store, queues, outputs) bytes. ``old``: the design
        before the frame store (no store; the JPEG in each queue message and ei:out entry)."""
        w, h = self.size
        now = time.time()
        refs: list[str] = [""]
        store = 0 if old else self._measured(
            lambda: refs.__setitem__(0, self.store.add(self.stream, jpeg, self.keep)))
        messages = [frame_msg.Frame(self.stream, t, seq, now, w, h, jpeg if old else b"",
                                    refs[0]).encode() for t in self.types]
        queues = self._measured(lambda: push_to_types(self.queues, messages))
        mine = [replace(r, stream=self.stream, type=t, seq=seq)
                for r, t in zip(results, self.types, strict=True)]
        outputs = self._measured(lambda: self._old_publish(mine, jpeg) if old
                                 else self.broker.publish([(r, refs[0]) for r in mine]))
        return store, queues, outputs

    def _old_publish(self, results: Sequence[Result], jpeg: bytes) -> None:
        """OutputBroker.publish as it was: the JPEG in every type's ei:out entry."""
        pipe = self.client.pipeline(transaction=False)
        for r in results:
            body = r.encode()
            pipe.xadd(keys.out(r.stream), {"frame": jpeg, "result": body},
                      maxlen=self.broker.out_maxlen, approximate=True)
            pipe.xadd(keys.results(r.stream), {"result": body}, approximate=True)
        pipe.execute()

    def clear(self) -> None:
        self.client.delete(keys.frames(self.stream), keys.out(self.stream),
                           keys.results(self.stream), *[keys.queue(t) for t in self.types])


def _redis_bytes(writes: _Writes, jpegs: Sequence[bytes], results: Sequence[Result]
                 ) -> tuple[float, float, float, float]:
    """Mean (frame store, queues, outputs, design before) bytes per frame."""
    store = queues = outputs = before = 0
    for seq, jpeg in enumerate(jpegs):
        s, q, o = writes.frame(seq, jpeg, results)
        store, queues, outputs = store + s, queues + q, outputs + o
        before += sum(writes.frame(seq, jpeg, results, old=True))
        writes.clear()  # the queues stay below their bound: no trim in the figures
    n = len(jpegs)
    return store / n, queues / n, outputs / n, before / n


class WebsocketViewer:
    """A real ``ei websocket`` process and one client subscribed to one stream."""

    def __init__(self, redis_url: str, stream: str) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        env = {k: v for k, v in os.environ.items() if not k.startswith("EI_")}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "elastic_inference.cli", "websocket", "--no-auth",
             "--host", "127.0.0.1", "--port", str(self.port), "--redis-url", redis_url,
             "--metrics-host", "127.0.0.1", "--metrics-port", "0", "--log-level", "WARNING"],
            env=env)
        self.stream = stream
        self.bytes = self.messages = 0
        self.lock = threading.Lock()
        self.stack = ExitStack()
        try:
            self.conn = self._connect()
            self.conn.send(json.dumps({"subscribe": [stream]}))
        except BaseException:
            self.proc.kill()
            self.proc.wait()
            raise
        self.thread = threading.Thread(target=self._read, name="bench-ws", daemon=True)
        self.thread.start()

    def _connect(self) -> ClientConnection:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if self.proc.poll() is not None:
                raise EIError(f"ei websocket exited with {self.proc.returncode}")
            try:
                return self.stack.enter_context(ws_connect(
                    f"ws://127.0.0.1:{self.port}{WS_PATH}", compression=None, max_size=None,
                    open_timeout=2))
            except OSError:
                if time.monotonic() > deadline:
                    raise EIError("ei websocket did not accept a connection") from None
                time.sleep(0.2)

    def _read(self) -> None:
        try:
            self._count()
        except ConnectionClosed:
            pass  # the service stopped first: what was counted stands

    def _count(self) -> None:
        """Every message's bytes (a frame's JPEG comes in a binary message, the other types'
        results as text); binary messages are counted apart: one per frame is the point."""
        for message in self.conn:
            size = len(message if isinstance(message, bytes) else message.encode())
            header = 2 if size < 126 else 4 if size < 65536 else 10
            with self.lock:
                self.bytes += size + header
                self.messages += isinstance(message, bytes)

    def taken(self) -> tuple[int, int]:
        """(bytes, messages) received so far, and start counting again."""
        with self.lock:
            out = (self.bytes, self.messages)
            self.bytes = self.messages = 0
        return out

    def close(self) -> None:
        try:
            self.stack.close()
        finally:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.thread.join(5)


def _websocket_bytes(viewer: WebsocketViewer, writes: _Writes, jpegs: Sequence[bytes],
                     results: Sequence[Result]) -> tuple[float, float]:
    """Mean websocket (bytes, binary messages) per frame published at :data:`FPS`."""
    registry = StreamRegistry(writes.client)
    deadline = time.monotonic() + START_TIMEOUT
    seq = 0
    while viewer.taken()[1] == 0:  # until the service follows the stream
        if time.monotonic() > deadline:
            raise EIError("ei websocket sent nothing for the bench's stream")
        writes.frame(seq, jpegs[0], results)
        seq += 1
        time.sleep(0.2)
    time.sleep(0.5)
    viewer.taken()
    for jpeg in jpegs:
        registry.beat(writes.stream, {"types": writes.types})
        writes.frame(seq, jpeg, results)
        seq += 1
        time.sleep(1.0 / FPS)
    time.sleep(1.0)  # the last frame's messages
    got, messages = viewer.taken()
    registry.remove(writes.stream)
    writes.clear()
    return got / len(jpegs), messages / len(jpegs)


def measure_storage(client: redis.Redis, redis_url: str, jpegs: Sequence[bytes],
                    size: tuple[int, int], result: Result, websocket: bool = True
                    ) -> list[StorageFigure]:
    """One figure for a stream of one type and one of three; ``websocket`` also runs a real
    websocket service (a few seconds more)."""
    out = []
    for types in ((result.type,), THREE_TYPES):
        stream = f"bench-bytes-{len(types)}"
        writes = _Writes(client, stream, types, size)
        results = [result] * len(types)
        store, queues, outputs, before = _redis_bytes(writes, jpegs, results)
        ws = messages = 0.0
        if websocket:
            StreamRegistry(client).beat(stream, {"types": list(types)})
            viewer = WebsocketViewer(redis_url, stream)
            try:
                ws, messages = _websocket_bytes(viewer, writes, jpegs, results)
            finally:
                viewer.close()
        out.append(StorageFigure(len(types), len(jpegs), sum(map(len, jpegs)) / len(jpegs),
                                 store, queues, outputs, before, ws, messages))
    return out
