"""How long the bench measures, and its rounds: each worker drain bracketed by the two
limits it is held to, so a share is taken at the machine's speed of that moment."""

from __future__ import annotations

from dataclasses import dataclass

from .harness import Drain
from .probes import Rate
from .report import shared_limit


@dataclass(frozen=True)
class Plan:
    """How long each measurement runs: ``--quick`` trades precision for time."""

    probe_seconds: int  # benchmark_app -t, and decode-only
    drain_seconds: float  # target length of a pre-filled drain
    # Cap on pre-filled frames (each 1280x720 JPEG is ~120 KB in Redis). 8,000 lets a
    # 1,000 frames/s worker drain for 7 s; at 2,000 its measured window was 1.5 s, short
    # beside the shared machine's swings.
    max_frames: int
    baseline_seconds: float
    live_seconds: float
    density_seconds: float
    density_tries: int
    agreement_frames: int
    storage_frames: int  # frames written for the frame storage figures
    storage_websocket: bool  # run a websocket service for them (a few seconds)
    # Rounds of the worker bracketed by the two limits; the median round is reported. The
    # machine's speed swings by a third within minutes (decode-only 1,960 then 1,050 frames/s
    # a quarter of an hour apart): one round's share moved by up to 0.15 with the limits
    # measured only before the drain, and the median of three by 0.05 between runs.
    rounds: int


QUICK = Plan(probe_seconds=2, drain_seconds=2.0, max_frames=600, baseline_seconds=1.5,
             live_seconds=2.0, density_seconds=2.0, density_tries=3, agreement_frames=24,
             storage_frames=8, storage_websocket=False, rounds=1)
FULL = Plan(probe_seconds=6, drain_seconds=8.0, max_frames=8000, baseline_seconds=8.0,
            live_seconds=10.0, density_seconds=10.0, density_tries=5, agreement_frames=120,
            storage_frames=60, storage_websocket=True, rounds=5)


@dataclass(frozen=True)
class Limits:
    """The two limits once: model only (benchmark_app) and decode only, each alone."""

    model_only_fps: float
    decode: Rate

    @property
    def shared_fps(self) -> float:
        return shared_limit(self.model_only_fps, self.decode.fps)



@dataclass(frozen=True)
class Round:
    """The worker's drains (1280x720 first) bracketed by the two limits, measured just before
    and again just after in reverse order: the machine's speed drifts within a minute, and
    the mean of a bracket is taken at the drain's own moment."""

    before: Limits
    after: Limits
    drains: list[Drain]

    @property
    def limit(self) -> Limits:
        """The mean of the limits before and after the drain."""
        a, b = self.before, self.after
        return Limits((a.model_only_fps + b.model_only_fps) / 2,
                      Rate((a.decode.fps + b.decode.fps) / 2,
                           (a.decode.cpu_ms_per_frame + b.decode.cpu_ms_per_frame) / 2))

    @property
    def drift(self) -> float:
        """The shared limit after the drain over the one before it."""
        return self.after.shared_fps / self.before.shared_fps

    @property
    def share(self) -> float:
        """The worker's 1280x720 throughput as a share of this round's shared limit."""
        return self.drains[0].fps / self.limit.shared_fps


def median_round(rounds: list[Round]) -> Round:
    """The round whose share is the median (the upper one of an even number)."""
    return sorted(rounds, key=lambda r: r.share)[len(rounds) // 2]
