"""``ei bench --scale``'s own options (doc/scaling.md, "150 cameras"), a mixin apart from
:mod:`.settings` to keep that file a readable size (``BenchSettings`` is built from it).
doc/configuration.md lists them.
"""

from __future__ import annotations

from dataclasses import dataclass

from . import setting_checks as checks
from .keys import TYPE_RE
from .options import opt


def _size(v: str) -> str:
    parts = v.lower().split("x")
    if len(parts) != 2 or not all(p.isdigit() for p in parts):
        return "must be WIDTHxHEIGHT, e.g. 320x180"
    w, h = map(int, parts)
    return "" if 32 <= w <= 3840 and 32 <= h <= 2160 else "must be 32x32..3840x2160"


@dataclass(frozen=True)
class ScaleOptions:
    """Many synthetic sources through the stream pool, workers, websocket and gateway."""

    scale: bool = opt(False, "instead of the worker figures, run many synthetic sources through "
                             "the stream pool, workers, websocket and gateway (doc/scaling.md)")
    scale_sources: int = opt(150, "scale: managed sources registered", check=checks.positive)
    scale_fps: float = opt(2.0, "scale: frames per second each source sends",
                           check=checks.positive)
    scale_size: str = opt("320x180", "scale: frame size of the synthetic sources (WxH)",
                          check=_size)
    scale_replicas: int = opt(3, "scale: ei stream --pool replicas", check=checks.positive)
    scale_type: str = opt("face", "scale: inference type the sources feed and the workers serve "
                                  "(its default model)",
                          check=lambda v: "" if TYPE_RE.fullmatch(v)
                          else f"must match {TYPE_RE.pattern}")
    scale_workers: int = opt(1, "scale: ei infer workers of that type", check=checks.positive)
    scale_seconds: float = opt(30.0, "scale: length of the measured steady window",
                               check=checks.positive)
    scale_ws_clients: int = opt(20, "scale: websocket clients receiving every stream",
                                check=checks.non_negative)

    @property
    def scale_wh(self) -> tuple[int, int]:
        w, h = self.scale_size.lower().split("x")
        return int(w), int(h)
