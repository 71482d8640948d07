"""StreamPipeline: one stream's results, out of order, through reorder, tracker and counter,
with wire ids from the caller's allocator and totals over all labels."""

from __future__ import annotations

from collections.abc import Sequence

from elastic_inference.core.analytics.events import with_frames
from elastic_inference.core.analytics.pipeline import StreamPipeline, tracks_entry
from elastic_inference.core.analytics.rules import Rule
from elastic_inference.core.result import Detection, Result

LINE = Rule("gate", "line", ((0.5, 0.0), (0.5, 1.0)))
ZONE = Rule("left", "zone", ((0.0, 0.0), (0.3, 0.0), (0.3, 1.0), (0.0, 1.0)))


class Ids:
    """A fake of the Redis id counter: INCRBY from a start that is not 1."""

    def __init__(self, last: int = 100) -> None:
        self.last = last
        self.calls: list[int] = []

    def __call__(self, n: int) -> int:
        self.calls.append(n)
        self.last += n
        return self.last - n + 1


def frame(seq: int, xs: list[float], infer_type: str = "people") -> Result:
    """People at ``xs`` (box centres), walking; a person's feet at y 0.6."""
    return Result("cam", infer_type, seq, 100.0 + seq / 10, 100.0 + seq / 10, "m", "CPU", 640,
                  480, tuple(Detection("person", 0.9, (x - 0.03, 0.4, x + 0.03, 0.6))
                             for x in xs))


def walk(n: int = 30) -> list[Result]:
    """Two people: one walks right across the line, one stands in the left zone."""
    return [frame(s, [0.35 + 0.02 * s, 0.1]) for s in range(n)]


def run(results: list[Result], pipeline: StreamPipeline) -> list:
    out = []
    for r in results:
        out += pipeline.push(r, f"{r.seq}-0", 0.0)
    return out + pipeline.poll(10.0)


def test_ids_come_from_the_allocator_and_stay_stable() -> None:
    ids = Ids(100)
    frames = run(walk(), StreamPipeline("cam", (LINE, ZONE), ids))
    assert [f.seq for f in frames] == list(range(30))
    seen = {t.id for f in frames for t in f.tracks}
    assert seen == {101, 102}  # two people, two ids from the counter, never the tracker's own
    assert ids.calls == [2]  # both confirmed in the same frame: one allocation
    assert all(f.ref == f"{f.seq}-0" and f.jpeg == b"" for f in frames)  # no picture carried


def test_only_frames_with_events_fetch_their_jpeg_in_one_call() -> None:
    frames = run(walk(), StreamPipeline("cam", (LINE, ZONE), Ids()))
    asked: list[list[tuple[str, str]]] = []

    def fetch(refs: Sequence[tuple[str, str]]) -> dict[tuple[str, str], bytes]:
        asked.append(list(refs))
        return {r: b"jpeg " + r[1].encode() for r in refs[1:]}  # the first is gone

    eventful = [f for f in frames if f.events]
    assert 0 < len(eventful) < len(frames)
    out = with_frames(frames, fetch)
    assert asked == [[("cam", f.ref) for f in eventful]]
    assert [f.jpeg for f in out if f.events] == [b""] + [b"jpeg " + f.ref.encode()
                                                         for f in eventful[1:]]
    assert all(f.jpeg == b"" for f in out if not f.events)
    assert with_frames([f for f in frames if not f.events], fetch) and len(asked) == 1


def test_out_of_order_results_give_the_same_events() -> None:
    in_order = run(walk(), StreamPipeline("cam", (LINE, ZONE), Ids()))
    results = walk()
    # The first seq seen starts the order; after it every pair arrives swapped.
    shuffled = [results[0], *(results[1 + (i ^ 1)] for i in range(28)), results[29]]
    pipeline = StreamPipeline("cam", (LINE, ZONE), Ids())
    swapped = run(shuffled, pipeline)
    assert [f.seq for f in swapped] == list(range(30))
    assert [e for f in swapped for e in f.events] == [e for f in in_order for e in f.events]
    assert pipeline.late() == 0
    pipeline.push(frame(28, [0.4]), "", 11.0)  # passed already: late
    assert pipeline.late() == 1


def test_counts_are_totals_per_rule_with_occupancy_and_restart_with_new_rules() -> None:
    pipeline = StreamPipeline("cam", (LINE, ZONE), Ids(), totals={("gate", "a->b", "car"): 4})
    run(walk(), pipeline)
    counts = pipeline.counts()
    # The walker crossed from the line's right... left to right = b->a for a line drawn down.
    assert counts["gate"] == {"a->b": 4, "b->a": 1}
    assert counts["left"] == {"occupancy": 1, "enter": 1, "leave": 0, "dwell": 0}
    pipeline.set_rules((LINE,), 2)
    assert pipeline.counts() == {"gate": {"a->b": 0, "b->a": 0}}
    assert pipeline.rules_version == 2


def test_tracks_entry_follows_the_wire() -> None:
    pipeline = StreamPipeline("cam", (LINE,), Ids(6))
    frames = run(walk(5), pipeline)
    entry = tracks_entry(frames[-1], 3, pipeline.counts())
    assert set(entry) == {"v", "stream", "type", "seq", "ts_capture", "frame", "rules_version",
                          "tracks", "counts"}
    assert (entry["v"], entry["stream"], entry["type"], entry["seq"]) == (1, "cam", "people", 4)
    assert entry["frame"] == {"w": 640, "h": 480} and entry["rules_version"] == 3
    track = entry["tracks"][0]
    assert set(track) == {"id", "label", "score", "box", "age"}
    assert track["id"] in (7, 8) and track["label"] == "person" and track["age"] == 5
    assert entry["counts"] == {"gate": {"a->b": 0, "b->a": 0}}


def test_each_type_has_its_own_tracker_but_one_id_space() -> None:
    ids = Ids(0)
    pipeline = StreamPipeline("cam", (), ids)
    for s in range(3):
        pipeline.push(frame(s, [0.2], "people"), "", 0.0)
        pipeline.push(frame(s, [0.2], "car"), "", 0.0)
    people = {t.id for t in pipeline.push(frame(3, [0.2], "people"), "", 0.0)[0].tracks}
    cars = {t.id for t in pipeline.push(frame(3, [0.2], "car"), "", 0.0)[0].tracks}
    assert people and cars and not people & cars
