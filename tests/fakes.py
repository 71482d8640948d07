"""Small fakes of the project's own interfaces, shared by the tests that need them.

Only unit tests and the tests of one component's own logic use these; integration tests run
real Redis, OpenVINO and brokers (the team's rule).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import cv2
import numpy as np
import redis

from elastic_inference.core.result import Detection
from elastic_inference.engine.detector import Done, infer_all


class FakeClock:
    """A clock the test moves by hand: ``clock.t += 5``."""

    def __init__(self, t: float = 100.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


class FakeCapture:
    """A scripted stand-in for cv2.VideoCapture: each item is an image, None (a broken frame
    that still reports success), or False (a failed read)."""

    def __init__(self, script: list[Any], opened: bool = True, fps: float = 20.0) -> None:
        self.script = list(script)
        self.opened = opened
        self.props = {cv2.CAP_PROP_FPS: fps, cv2.CAP_PROP_FRAME_WIDTH: 8.0,
                      cv2.CAP_PROP_FRAME_HEIGHT: 6.0,
                      cv2.CAP_PROP_FRAME_COUNT: float(len(script)), cv2.CAP_PROP_POS_FRAMES: 0.0}
        self.released = False
        self._grabbed: Any = None

    def isOpened(self) -> bool:  # noqa: N802
        return self.opened

    def read(self) -> tuple[bool, Any]:
        if not self.grab():
            return False, None
        return self.retrieve()

    def grab(self) -> bool:
        if not self.script:
            return False
        self._grabbed = self.script.pop(0)
        self.props[cv2.CAP_PROP_POS_FRAMES] += 1
        return self._grabbed is not False

    def retrieve(self) -> tuple[bool, Any]:
        return True, self._grabbed

    def get(self, prop: int) -> float:
        return self.props.get(prop, 0.0)

    def release(self) -> None:
        self.released = True


class FakeDetector:
    """Finishes a request when the next one needs room, like a device with one request."""

    model = "fake"
    device = "CPU"
    precision = "f32"
    input_size = (64, 64)
    batch = 1

    def __init__(self) -> None:
        self.pending: list[tuple[int, np.ndarray]] = []

    def prepare(self, image: np.ndarray) -> np.ndarray:
        return image

    def submit(self, prepared: np.ndarray, tag: int) -> list[Done]:
        done = self.flush()
        self.pending.append((tag, prepared))
        return done

    def flush(self) -> list[Done]:
        done = [(tag, [Detection("x", 1.0, (0.0, 0.0, float(x.shape[1]) / 100, 1.0))])
                for tag, x in self.pending]
        self.pending.clear()
        return done

    def infer(self, images: Sequence[np.ndarray]) -> list[list[Detection]]:
        return infer_all(self, images)

    def close(self) -> None:
        pass


class StuckDetector(FakeDetector):
    """A detector whose inference hangs until released (a wedged device or driver)."""

    model = "stuck"

    def __init__(self) -> None:
        super().__init__()
        self.entered = threading.Event()
        self.release = threading.Event()

    def submit(self, prepared: np.ndarray, tag: int) -> list[Done]:
        self.entered.set()
        self.release.wait()
        return super().submit(prepared, tag)

    def close(self) -> None:
        self.release.set()


class DownRedis:
    """Every Redis call fails as if the server were unreachable."""

    def __getattr__(self, name: str) -> Any:
        def fail(*_args: Any, **_kwargs: Any) -> Any:
            raise redis.ConnectionError("Connection refused (fake)")
        return fail


#: Headers every gateway answer carries (services/gateway: security headers).
SECURITY_HEADERS = ("Content-Security-Policy", "X-Content-Type-Options", "X-Frame-Options",
                    "Referrer-Policy")
