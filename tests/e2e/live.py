"""The dashboard's live side for the browser tests: the real websocket and gateway services on
free loopback ports, a publisher of synthetic-but-real output (real JPEGs, real Result
objects, the real stream registry, so no workers are needed), and what the page shows, read
through the SPA's data- attributes and canvases.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import redis

from elastic_inference.core.broker import OutputBroker
from elastic_inference.core.registry import StreamRegistry
from elastic_inference.core.result import Detection, Result
from tests.e2e.browser import SPA, Browser
from tests.outputs import publish
from tests.processes import Service, get_json, wait_for
from tests.redis_server import RedisServer, free_port

FRAME_SIZE = (768, 576)  # vtest.avi's own size, as `ei up` streams it

# Per tile: the counters the SPA exposes as data- attributes.
TILES_JS = """[...document.querySelectorAll('.tile')].map((t) => ({
  stream: t.dataset.stream, frames: +t.dataset.frames, painted: +t.dataset.painted,
  drops: +t.dataset.drops, detections: +t.dataset.detections,
  p50: t.dataset.paintP50 === '' ? null : +t.dataset.paintP50,
  p95: t.dataset.paintP95 === '' ? null : +t.dataset.paintP95,
  latency: t.dataset.latency === '' ? null : +t.dataset.latency}))"""

# A checksum of every tile's canvas pixels (sampled), to see pictures change.
PIXELS_JS = """Object.fromEntries([...document.querySelectorAll('.tile')].map((t) => {
  const c = t.querySelector('canvas');
  const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
  let sum = 0;
  for (let i = 0; i < d.length; i += 61) sum = (sum * 31 + d[i]) % 1000000007;
  return [t.dataset.stream, sum];
}))"""


def colour_pixels_js(stream: str, rgb: tuple[int, int, int], tolerance: int = 40) -> str:
    """Pixels of ``stream``'s canvas within ``tolerance`` of ``rgb`` on every channel."""
    return f"""(() => {{
  const c = document.querySelector('.tile[data-stream="{stream}"] canvas');
  const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
  const [r, g, b] = {list(rgb)};
  let n = 0;
  for (let i = 0; i < d.length; i += 4) {{
    if (Math.abs(d[i] - r) <= {tolerance} && Math.abs(d[i + 1] - g) <= {tolerance}
        && Math.abs(d[i + 2] - b) <= {tolerance}) n += 1;
  }}
  return n;
}})()"""


def tile_ids(browser: Browser) -> set[str]:
    return {t["stream"] for t in browser.eval(TILES_JS)}


def tiles_by_stream(browser: Browser) -> dict[str, dict[str, Any]]:
    return {t["stream"]: t for t in browser.eval(TILES_JS)}


def assert_no_page_problems(browser: Browser) -> None:
    problems = browser.problems()
    assert not problems, problems



def flushed(server: RedisServer) -> str:
    client = redis.Redis.from_url(server.url)
    client.flushall()
    client.close()
    return server.url


class Publisher(threading.Thread):
    """Streams registered in the registry and their output published at ``fps``, as workers
    would: real JPEGs and real Result objects with a few moving "Person" boxes (one box
    labelled with the type's name for another type)."""

    def __init__(self, redis_url: str, streams: list[str], fps: float,
                 jpegs: list[bytes], types: tuple[str, ...] = ("people",)) -> None:
        super().__init__(daemon=True)
        self.types = types
        self.client = redis.Redis.from_url(redis_url)
        self.streams = streams
        self.fps = fps
        self.jpegs = jpegs
        self.stop = threading.Event()
        self.published = 0

    def result(self, stream: str, seq: int, now: float, infer_type: str = "people") -> Result:
        phase = (seq % 90) / 90.0
        boxes = tuple(Detection("Person", 0.9 - 0.1 * i,
                                (0.1 + 0.6 * phase, 0.2 + 0.2 * i, 0.25 + 0.6 * phase,
                                 0.5 + 0.2 * i)) for i in range(2))
        if infer_type != "people":
            y = 0.05 + 0.3 * (self.types.index(infer_type) - 1)
            boxes = (Detection(infer_type, 0.8, (0.05, y, 0.3, y + 0.25)),)
        return Result(stream=stream, type=infer_type, seq=seq, ts_capture=now - 0.04,
                      ts_done=now - 0.005, model="synthetic", device="CPU", w=FRAME_SIZE[0],
                      h=FRAME_SIZE[1], detections=boxes)

    def run(self) -> None:
        broker = OutputBroker(self.client)
        registry = StreamRegistry(self.client)
        info = {"types": list(self.types), "source_kind": "synthetic", "source": "vtest.avi",
                "w": FRAME_SIZE[0], "h": FRAME_SIZE[1], "fps": self.fps, "state": "live"}
        period = 1.0 / self.fps
        next_beat = 0.0
        start = time.monotonic()
        seq = 0
        try:
            while not self.stop.is_set():
                now = time.time()
                if time.monotonic() >= next_beat:
                    for stream in self.streams:
                        registry.beat(stream, info)
                    next_beat = time.monotonic() + 1.0
                jpeg = self.jpegs[seq % len(self.jpegs)]
                publish(broker, [(self.result(s, seq, now, t), jpeg) for s in self.streams
                                 for t in self.types], now)
                self.published = seq = seq + 1
                # On a fixed schedule (not sleep-after-work), so the rate holds under load.
                self.stop.wait(max(0.0, start + seq * period - time.monotonic()))
        finally:
            for stream in self.streams:
                registry.remove(stream)
            self.client.close()


def access_args(env: dict[str, str] | None) -> list[str]:
    """Authentication on when ``env`` gives a session secret (EI_SESSION_SECRET), else off."""
    return [] if env and "EI_SESSION_SECRET" in env else ["--no-auth"]


def websocket_service(redis_url: str, port: int, env: dict[str, str] | None = None) -> Service:
    """The websocket service on loopback ``port``, checking credentials as the gateway in
    front of it does (``access_args``)."""
    return Service(["websocket", "--redis-url", redis_url, "--host", "127.0.0.1", "--port",
                    str(port), *access_args(env)], env=env)


def live_services(redis_url: str, *gateway_args: str, env: dict[str, str] | None = None
                  ) -> tuple[str, int, Service, Service]:
    """The websocket service and the gateway relaying /ws to it and serving spa/dist, on free
    loopback ports: (the page's URL, the websocket port, websocket, gateway). Without
    authentication (everyone admin, the page shows no login) unless ``env`` has a secret."""
    port, ws_port = free_port(), free_port()
    websocket = websocket_service(redis_url, ws_port, env)
    gateway = Service(["gateway", "--redis-url", redis_url, "--host", "127.0.0.1", "--port",
                       str(port), "--websocket-upstream", f"ws://127.0.0.1:{ws_port}/ws",
                       "--spa-dir", str(SPA / "dist"), *access_args(env), *gateway_args],
                      env=env)
    return f"http://127.0.0.1:{port}/", ws_port, websocket, gateway


@contextlib.contextmanager
def publishing(url: str, publisher: Publisher, browser: Browser,
               services: Callable[[], list[Service]]) -> Iterator[None]:
    """Once the gateway at ``url`` is ready, ``publisher`` runs until the block ends; then the
    browser leaves the page and ``services()`` must each stop with status 0."""
    try:
        wait_for(lambda: get_json(f"{url}readyz")[0] == 200, 20, "the gateway")
        publisher.start()
        yield
    finally:
        browser.leave()
        publisher.stop.set()
        publisher.join(timeout=5)
        stopped = services()
        codes = [s.stop(timeout=20) for s in stopped]
    assert codes == [0] * len(stopped), "".join(s.output()[-2000:] for s in stopped)
