"""Stable ids across frames: a small ByteTrack-style tracker of one stream and inference type.

Each track keeps a constant-velocity Kalman filter on its box's centre and size (state
``cx, cy, w, h`` and their velocities, in normalised units, noise proportional to the box's
height as ByteTrack does). Per frame the tracks are predicted to the frame's ``seq`` (a gap
of several seqs, frames the stream dropped, is several steps), then associated by IoU in two
stages: detections scoring ``>= high`` first, against every track; the rest (down to ``low``)
then, against the tracks still unmatched, so a person whose score dips behind a lamp post
keeps their id. Only a detection of the same label matches. An unmatched high detection starts
a tentative track, confirmed after ``min_hits`` hits in a row; a track dies after
``max_misses`` frames without a match. Association is greedy on IoU (best pair first):
doc/analytics.md gives the figures against the optimal assignment.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..result import Box, Detection, box_iou

_POS, _VEL = 1.0 / 20.0, 1.0 / 160.0  # noise per unit of box height (ByteTrack's weights)


@dataclass(frozen=True)
class Track:
    """One confirmed track as of a frame: ``age`` in seqs since its first detection (that
    one included), ``hits`` the detections matched to it; ``misses`` 0 means a detection
    matched it in this frame, more means ``box`` is the prediction after that many seqs
    without one."""

    id: int
    label: str
    box: Box
    score: float
    age: int
    hits: int
    misses: int = 0

    def to_json(self) -> dict[str, Any]:
        """The track as the tracks wire spells it (doc/analytics.md, "Wire")."""
        return {"id": self.id, "label": self.label, "score": round(float(self.score), 4),
                "box": [round(float(v), 5) for v in self.box], "age": self.age}


def _to_z(box: Box) -> np.ndarray:
    x1, y1, x2, y2 = box
    return np.array([(x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1])


class _Kalman:
    """Constant velocity on (cx, cy, w, h); the position is measured, the velocity is not."""

    _H = np.hstack([np.eye(4), np.zeros((4, 4))])
    _F = np.eye(8) + np.eye(8, k=4)

    def __init__(self, box: Box) -> None:
        z = _to_z(box)
        self.x = np.concatenate([z, np.zeros(4)])
        h = max(z[3], 1e-3)
        self.P = np.diag(np.square([2 * _POS * h] * 4 + [10 * _VEL * h] * 4))

    def predict(self, steps: int) -> None:
        for _ in range(max(steps, 0)):
            h = max(self.x[3], 1e-3)
            q = np.diag(np.square([_POS * h] * 4 + [_VEL * h] * 4))
            self.x = self._F @ self.x
            self.P = self._F @ self.P @ self._F.T + q
            self.x[2:4] = np.maximum(self.x[2:4], 1e-4)

    def correct(self, box: Box) -> None:
        z = _to_z(box)
        r = np.diag(np.square([_POS * max(z[3], 1e-3)] * 4))
        gain = self.P @ self._H.T @ np.linalg.inv(self._H @ self.P @ self._H.T + r)
        self.x = self.x + gain @ (z - self._H @ self.x)
        self.P = (np.eye(8) - gain @ self._H) @ self.P

    def box(self) -> Box:
        cx, cy, w, h = (float(v) for v in self.x[:4])
        return (cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2)


class _State:
    def __init__(self, det: Detection, seq: int) -> None:
        self.id = 0  # given when confirmed, so tentative tracks use no ids
        self.label = det.label
        self.kf = _Kalman(det.box)
        self.score = det.score
        self.seq = seq  # the seq the filter is predicted to
        self.first = seq
        self.hits = 1
        self.misses = 0


def greedy_pairs(scores: np.ndarray, minimum: float) -> list[tuple[int, int]]:
    """Row/column pairs of a score matrix, best score first, each row and column used once,
    none below ``minimum``."""
    pairs: list[tuple[int, int]] = []
    if scores.size == 0:
        return pairs
    order = np.argsort(-scores, axis=None)
    rows: set[int] = set()
    cols: set[int] = set()
    for flat in order:
        r, c = divmod(int(flat), scores.shape[1])
        if scores[r, c] < minimum:
            break
        if r not in rows and c not in cols:
            rows.add(r)
            cols.add(c)
            pairs.append((r, c))
    return pairs


class Tracker:
    """Tracks of one stream and inference type, fed its results in ``seq`` order (put a
    :class:`.reorder.ReorderBuffer` in front). The same seq again changes nothing; an older
    seq means the stream restarted (its seqs start at 0 again): every track ends, and the
    ids go on from where they were, so an id is never given twice."""

    def __init__(self, high: float = 0.5, low: float = 0.1, min_iou: float = 0.2,
                 min_hits: int = 2, max_misses: int = 30) -> None:
        self.high, self.low, self.min_iou = high, low, min_iou
        self.min_hits, self.max_misses = min_hits, max_misses
        self._tracks: list[_State] = []
        self._next_id = 1
        self._seq: int | None = None

    def _match(self, tracks: list[_State], dets: Sequence[Detection]
               ) -> tuple[list[tuple[_State, Detection]], list[_State], list[Detection]]:
        scores = np.zeros((len(tracks), len(dets)))
        for i, t in enumerate(tracks):
            box = t.kf.box()
            for j, d in enumerate(dets):
                if d.label == t.label:
                    scores[i, j] = box_iou(box, d.box)
        pairs = greedy_pairs(scores, self.min_iou)
        used_t = {i for i, _ in pairs}
        used_d = {j for _, j in pairs}
        return ([(tracks[i], dets[j]) for i, j in pairs],
                [t for i, t in enumerate(tracks) if i not in used_t],
                [d for j, d in enumerate(dets) if j not in used_d])

    def update(self, detections: Sequence[Detection], seq: int, ts: float = 0.0) -> list[Track]:
        """Advance to frame ``seq`` with its detections; the confirmed tracks still alive.

        ``ts`` is accepted for symmetry with the counter; the motion model steps in seqs,
        so a frame the stream dropped still counts as a step.
        """
        if self._seq is not None and seq == self._seq:
            return self._confirmed()  # a duplicate: nothing moved
        if self._seq is not None and seq < self._seq:
            self._tracks = []  # the stream restarted (seqs start at 0): new ids from here
            self._seq = None
        steps = 1 if self._seq is None else seq - self._seq
        self._seq = seq
        for t in self._tracks:  # past max_misses steps a track dies anyway: a huge gap costs
            t.kf.predict(min(steps, self.max_misses + 1))  # no more than that
        high = [d for d in detections if d.score >= self.high]
        low = [d for d in detections if self.low <= d.score < self.high]
        matched, rest, new = self._match(self._tracks, high)
        # Stage two: low-score detections only for tracks that already had an id or a hit
        # last frame (a tentative track that missed is more likely noise than occlusion).
        pairs2, _, _ = self._match([t for t in rest if t.misses == 0 or t.id], low)
        for t, d in matched + pairs2:
            t.kf.correct(d.box)
            t.score, t.hits, t.misses = d.score, t.hits + 1, 0
            if not t.id and t.hits >= self.min_hits:
                t.id, self._next_id = self._next_id, self._next_id + 1
        matched_ids = {id(t) for t, _ in matched + pairs2}
        for t in self._tracks:
            if id(t) not in matched_ids:
                t.misses += steps
        # A tentative track dies at its first miss: a birth needs min_hits hits in a row.
        self._tracks = [t for t in self._tracks
                        if t.misses <= (self.max_misses if t.id else 0)]
        for d in new:
            s = _State(d, seq)
            if self.min_hits <= 1:
                s.id, self._next_id = self._next_id, self._next_id + 1
            self._tracks.append(s)
        return self._confirmed()

    def _confirmed(self) -> list[Track]:
        seq = self._seq or 0
        return [Track(t.id, t.label, t.kf.box(), t.score, seq - t.first + 1, t.hits, t.misses)
                for t in self._tracks if t.id]
