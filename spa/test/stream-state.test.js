// One stream's bookkeeping in the browser: frames, seq gaps, restarts, figures.
import { describe, expect, it } from "vitest";
import { StreamState } from "../src/live/stream-state.js";

function result(seq, type = "people", extra = {}) {
  return { seq, type, ts_capture: 100, ts_done: 100.05, detections: [], ...extra };
}

describe("StreamState.accept", () => {
  it("tells a new frame from another type's result and from a late frame", () => {
    const s = new StreamState("a");
    expect(s.accept(result(10, "people"), 100.2)).toBe("new");
    expect(s.accept(result(10, "face"), 100.2)).toBe("same");
    expect(s.accept(result(11, "people"), 100.2)).toBe("new");
    expect(s.accept(result(9, "people"), 100.2)).toBe("late");
    expect(s.frames).toBe(3);
    expect(s.messages).toBe(4);
  });

  it("counts the seqs missing from the range seen as drops", () => {
    const s = new StreamState("a");
    for (const seq of [0, 1, 4, 5, 9]) s.accept(result(seq), 100);
    expect(s.missed).toBe(5); // 2, 3, 6, 7, 8
    s.clientDrops = 2;
    expect(s.drops).toBe(7);
  });

  it("takes a late frame out of the gaps", () => {
    const s = new StreamState("a");
    for (const seq of [0, 3]) s.accept(result(seq), 100);
    expect(s.missed).toBe(2);
    expect(s.accept(result(1), 100)).toBe("late");
    expect(s.missed).toBe(1);
  });

  it("starts afresh when the stream restarts from 0, keeping the drops and paints", () => {
    const s = new StreamState("a");
    for (const seq of [1000, 1002]) s.accept(result(seq), 100);
    s.paintedAfter(5);
    s.clientDrops = 3;
    expect(s.drops).toBe(4);
    expect(s.accept(result(0), 100)).toBe("new");
    expect(s.frames).toBe(1);
    expect(s.messages).toBe(1);
    expect(s.painted).toBe(1);
    expect(s.drops).toBe(4); // the earlier run's gap and client drops, nothing new
    expect(s.accept(result(1), 100)).toBe("new");
  });

  it("treats a frame less than the seq window behind as late, not a restart", () => {
    const s = new StreamState("a");
    s.accept(result(1000), 100);
    expect(s.accept(result(1000 - 256), 100)).toBe("late");
    expect(s.frames).toBe(2);
  });

  it("keeps each type's newest result, not a late one", () => {
    const s = new StreamState("a");
    const box = [0.1, 0.1, 0.5, 0.5];
    s.accept(result(5, "people", { detections: [{ label: "person", score: 0.9, box }] }), 100);
    s.accept(result(4, "people", { detections: [] }), 100);
    s.accept(result(5, "face", { detections: [{ label: "face", score: 0.8, box }] }), 100);
    expect(s.detections()).toEqual([
      { label: "person", score: 0.9, box, type: "people" },
      { label: "face", score: 0.8, box, type: "face" },
    ]);
    expect(s.types()).toEqual(["face", "people"]);
  });

  it("treats a result without detections as none", () => {
    const s = new StreamState("a");
    s.accept({ seq: 1, type: "car", ts_capture: 1, ts_done: 1 }, 2);
    expect(s.detections()).toEqual([]);
  });

  it("forgets old seqs but still tells a repeat within the window", () => {
    const s = new StreamState("a");
    for (let seq = 0; seq < 600; seq += 1) s.accept(result(seq), 100);
    expect(s.seen.size).toBeLessThanOrEqual(2 * 256 + 1);
    expect(s.accept(result(599, "face"), 100)).toBe("same");
    expect(s.missed).toBe(0);
  });
});

describe("StreamState.accept of a result without its frame", () => {
  it("is never a new frame nor counted as one, but keeps its type's newest result", () => {
    const s = new StreamState("a");
    const box = [0.1, 0.1, 0.5, 0.5];
    expect(s.accept(result(10, "people"), 100)).toBe("new");
    const face = result(10, "face", { detections: [{ label: "face", score: 0.8, box }] });
    expect(s.accept(face, 100, false)).toBe("same"); // drawn on frame 10, which is here
    expect(s.byType.get("face")).toBe(face);
    // The frame of seq 11 is not coming (skipped on the way): its results still count.
    expect(s.accept(result(11, "face"), 100, false)).toBe("late");
    expect(s.byType.get("face").seq).toBe(11);
    expect(s.accept(result(9, "car"), 100, false)).toBe("late");
    expect(s.frames).toBe(1);
    expect(s.messages).toBe(4);
    expect(s.maxSeq).toBe(10);
    // The next frame that comes with its JPEG is new, and seq 11 is counted as missed.
    expect(s.accept(result(12, "people"), 100)).toBe("new");
    expect(s.frames).toBe(2);
    expect(s.missed).toBe(1);
  });

  it("never returns new for the first result of a stream either", () => {
    const s = new StreamState("a");
    expect(s.accept(result(3, "face"), 100, false)).toBe("late");
    expect(s.frames).toBe(0);
    expect(s.types()).toEqual(["face"]);
    expect(s.accept(result(3, "people"), 100)).toBe("new");
  });
});

describe("StreamState.delayPercentile", () => {
  it("is null before any paint", () => {
    expect(new StreamState("a").delayPercentile(50)).toBeNull();
  });

  it("takes the percentile of the recent paints", () => {
    const s = new StreamState("a");
    for (const ms of [40, 10, 30, 20]) s.paintedAfter(ms);
    expect(s.delayPercentile(0)).toBe(10);
    expect(s.delayPercentile(50)).toBe(30);
    expect(s.delayPercentile(95)).toBe(40);
    expect(s.delayPercentile(100)).toBe(40);
    expect(s.painted).toBe(4);
  });

  it("keeps only the last 128 delays", () => {
    const s = new StreamState("a");
    for (let i = 0; i < 128; i += 1) s.paintedAfter(1000);
    for (let i = 0; i < 128; i += 1) s.paintedAfter(5);
    expect(s.delayPercentile(100)).toBe(5);
    expect(s.painted).toBe(256);
  });
});

describe("StreamState.sample", () => {
  it("has no rates on the first call, then rates per second since the previous call", () => {
    const s = new StreamState("a");
    s.accept(result(0), 100.3);
    const first = s.sample(1000);
    expect(first.fps).toBeNull();
    expect(first.paintFps).toBeNull();
    expect(first.frames).toBe(1);
    for (let seq = 1; seq <= 10; seq += 1) s.accept(result(seq), 100.3);
    for (let i = 0; i < 5; i += 1) s.paintedAfter(20);
    const second = s.sample(3000); // two seconds later
    expect(second.fps).toBeCloseTo(5);
    expect(second.paintFps).toBeCloseTo(2.5);
    expect(second.frames).toBe(11);
    expect(second.painted).toBe(5);
  });

  it("averages latency and pipeline over the results since the previous call", () => {
    const s = new StreamState("a");
    s.accept(result(0, "people", { ts_capture: 100, ts_done: 100.1 }), 100.2);
    s.accept(result(1, "people", { ts_capture: 101, ts_done: 101.3 }), 101.4);
    const out = s.sample(0);
    expect(out.latency).toBeCloseTo(0.3);
    expect(out.pipeline).toBeCloseTo(0.2);
    const idle = s.sample(1000);
    expect(idle.latency).toBeNull();
    expect(idle.pipeline).toBeNull();
    expect(idle.fps).toBe(0);
  });

  it("reports detections, types, drops and paint percentiles", () => {
    const s = new StreamState("a");
    const det = { label: "car", score: 0.7, box: [0, 0, 1, 1] };
    s.accept(result(0, "car", { detections: [det, det] }), 100);
    s.accept(result(2, "people"), 100);
    s.paintedAfter(12);
    const out = s.sample(0);
    expect(out.detections).toBe(2);
    expect(out.types).toEqual(["car", "people"]);
    expect(out.drops).toBe(1);
    expect(out.delayP50).toBe(12);
    expect(out.delayP95).toBe(12);
  });

  it("starts its rates afresh after a restart: none at first, never a negative one", () => {
    const s = new StreamState("a");
    for (let seq = 1000; seq < 1010; seq += 1) s.accept(result(seq), 100);
    s.sample(0);
    s.accept(result(0), 100);
    expect(s.sample(1000).fps).toBeNull();
    for (let seq = 1; seq <= 4; seq += 1) s.accept(result(seq), 100);
    expect(s.sample(2000).fps).toBeCloseTo(4);
  });
});
