"""The tracker keeps ids through crossings and missed frames and gives new objects new ids."""

from __future__ import annotations

import numpy as np

from elastic_inference.core.analytics.tracker import Track, Tracker, greedy_pairs
from elastic_inference.core.result import Detection


def person(cx: float, cy: float, score: float = 0.9, label: str = "person") -> Detection:
    return Detection(label, score, (cx - 0.03, cy - 0.08, cx + 0.03, cy + 0.08))


def ids(tracks: list[Track]) -> dict[int, float]:
    """Track id -> its box's centre x."""
    return {t.id: (t.box[0] + t.box[2]) / 2 for t in tracks if t.misses == 0}


def test_a_track_is_born_after_min_hits_and_keeps_its_id() -> None:
    tracker = Tracker(min_hits=3)
    assert tracker.update([person(0.1, 0.5)], 0) == []
    assert tracker.update([person(0.11, 0.5)], 1) == []
    tracks = tracker.update([person(0.12, 0.5)], 2)
    assert [(t.id, t.hits, t.age) for t in tracks] == [(1, 3, 3)]
    for seq in range(3, 20):
        tracks = tracker.update([person(0.1 + 0.01 * seq, 0.5)], seq)
        assert [t.id for t in tracks] == [1]


def test_two_crossing_people_keep_their_ids() -> None:
    tracker = Tracker()
    first: dict[int, float] = {}
    for seq in range(40):
        x = 0.1 + 0.02 * seq  # one walks right, the other left, crossing at seq 20
        dets = [person(x, 0.5, 0.9), person(0.9 - 0.02 * seq, 0.52, 0.8)]
        if 19 <= seq <= 21:
            dets = dets[:1]  # the one behind is hidden while they overlap
        now = ids(tracker.update(dets, seq))
        if seq == 5:
            first = now
    last = now
    assert len(first) == 2 and set(first) == set(last)
    for tid in first:  # the one that started on the left ends on the right, and back
        assert (first[tid] < 0.5) == (last[tid] > 0.5)


def test_missed_frames_keep_the_track_and_a_dropped_seq_is_a_step() -> None:
    tracker = Tracker(max_misses=5)
    for seq in range(5):
        tracks = tracker.update([person(0.2 + 0.02 * seq, 0.5)], seq)
    tid = tracks[0].id
    for seq in range(5, 8):  # three frames without a detection: predicted, not lost
        coasting = tracker.update([], seq)
        assert [(t.id, t.misses) for t in coasting] == [(tid, seq - 4)]
        assert (coasting[0].box[0] + coasting[0].box[2]) / 2 > 0.28  # it moved on
    tracks = tracker.update([person(0.2 + 0.02 * 8, 0.5)], 8)
    assert [(t.id, t.misses) for t in tracks] == [(tid, 0)]
    tracks = tracker.update([person(0.2 + 0.02 * 12, 0.5)], 12)  # seqs 9-11 never came
    assert [(t.id, t.misses) for t in tracks] == [(tid, 0)]


def test_a_track_dies_after_max_misses_and_a_new_object_gets_a_new_id() -> None:
    tracker = Tracker(max_misses=3)
    for seq in range(4):
        tracks = tracker.update([person(0.3, 0.5)], seq)
    old = tracks[0].id
    for seq in range(4, 8):
        tracks = tracker.update([], seq)
    assert tracks == []
    tracker.update([person(0.3, 0.5)], 8)
    tracks = tracker.update([person(0.3, 0.5)], 9)
    assert len(tracks) == 1 and tracks[0].id != old
    tracks = tracker.update([person(0.3, 0.5), person(0.7, 0.5)], 10)
    tracks = tracker.update([person(0.3, 0.5), person(0.7, 0.5)], 11)
    assert len({t.id for t in tracks}) == 2 and old not in {t.id for t in tracks}


def test_low_scores_keep_a_track_but_start_none() -> None:
    tracker = Tracker(high=0.5, low=0.1)
    for seq in range(3):
        tracks = tracker.update([person(0.3, 0.5, 0.9)], seq)
    tid = tracks[0].id
    for seq in range(3, 10):  # the score dips: the second stage matches it
        tracks = tracker.update([person(0.3, 0.5, 0.2), person(0.8, 0.5, 0.2)], seq)
        assert [(t.id, t.misses) for t in tracks] == [(tid, 0)]


def test_labels_never_match_each_other() -> None:
    tracker = Tracker()
    for seq in range(3):
        tracker.update([person(0.3, 0.5)], seq)
    tracks = tracker.update([person(0.3, 0.5, label="car")], 3)
    assert [t.label for t in tracks] == ["person"] and tracks[0].misses == 1


def test_greedy_pairs_takes_the_best_first() -> None:
    scores = np.array([[0.9, 0.8], [0.85, 0.1], [0.0, 0.05]])
    assert greedy_pairs(scores, 0.2) == [(0, 0)]  # 1 can only have col 1 at 0.1 < 0.2
    assert sorted(greedy_pairs(scores, 0.05)) == [(0, 0), (1, 1)]


def test_a_duplicate_seq_changes_nothing_and_a_restart_ends_every_track() -> None:
    tracker = Tracker()
    for seq in range(50, 53):
        tracks = tracker.update([person(0.3, 0.5)], seq)
    assert tracker.update([], 52) == tracks  # the same frame again: nothing moved
    old = {t.id for t in tracks}
    assert tracker.update([person(0.3, 0.5)], 0) == []  # seqs from 0 again: a new stream
    tracks = tracker.update([person(0.3, 0.5)], 1)
    assert len(tracks) == 1 and tracks[0].id not in old and tracks[0].age == 2


def test_a_huge_seq_gap_ends_the_tracks_without_stepping_through_it() -> None:
    tracker = Tracker(max_misses=30)
    for seq in range(3):
        tracker.update([person(0.3, 0.5)], seq)
    assert tracker.update([], 10**9) == []  # a billion predictions would never return
    assert len(tracker.update([person(0.3, 0.5)], 10**9 + 1)) == 0  # tentative again
