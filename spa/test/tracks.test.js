// Live tracks on the page: which tracks message goes with the frame on screen, what is drawn
// (track ids, or boxes as before without tracks), the feed's handling of {"tracks": ...}
// messages, and the live counts table.
import { describe, expect, it } from "vitest";
import { LiveFeed } from "../src/live/feed.js";
import { StreamState } from "../src/live/stream-state.js";
import { TrackStore, countRows, overlayFor } from "../src/live/tracks.js";
import { labelColour } from "../src/colours.js";

const tracksMsg = (seq, ids = [7], type = "people", extra = {}) => ({
  v: 1, stream: "cam1", type, seq, ts_capture: 1764670000 + seq / 10, frame: { w: 768, h: 576 },
  tracks: ids.map((id) => ({ id, label: "person", score: 0.8, box: [0.1, 0.2, 0.3, 0.6], age: 3 })),
  counts: { gate: { "a->b": seq, "b->a": 1 } }, ...extra,
});
const result = (seq, type = "people") => ({
  v: 1, stream: "cam1", type, seq, ts_capture: 1, ts_done: 1.1, frame: { w: 768, h: 576 },
  detections: [{ label: "person", score: 0.91, box: [0.1, 0.2, 0.3, 0.6] }],
});

describe("TrackStore.pick", () => {
  it("takes the frame's own seq when it has arrived, else the newest not newer", () => {
    const store = new TrackStore();
    for (const seq of [10, 12, 11, 14]) store.accept(tracksMsg(seq, [seq]));
    expect(store.pick("people", 12).seq).toBe(12);
    expect(store.pick("people", 13).seq).toBe(12); // 13 has no tracks (yet): the one before
    expect(store.pick("people", 20).seq).toBe(14);
    expect(store.pick("people", 9)).toBeNull(); // older than every tracks message
    expect(store.pick("face", 12)).toBeNull(); // no tracks of that type
  });

  it("replaces a repeated seq, keeps a bounded window and starts again on a restart", () => {
    const store = new TrackStore();
    store.accept(tracksMsg(5, [1]));
    store.accept(tracksMsg(5, [2]));
    expect(store.pick("people", 5).tracks[0].id).toBe(2);
    for (let seq = 6; seq < 100; seq += 1) store.accept(tracksMsg(seq));
    expect(store.byType.get("people").length).toBe(32);
    expect(store.pick("people", 20)).toBeNull(); // fell out of the window
    store.accept(tracksMsg(0, [50])); // the stream restarted
    expect(store.byType.get("people").map((m) => m.seq)).toEqual([0]);
  });

  it("refuses what is not a tracks message and counts it", () => {
    const store = new TrackStore();
    for (const bad of [null, [], { type: "people" }, { type: "people", seq: 1.5, tracks: [] },
      { type: 3, seq: 1, tracks: [] }, { type: "people", seq: 1, tracks: {} }]) {
      expect(store.accept(bad)).toBe(false);
    }
    expect(store.invalid).toBe(6);
    expect(store.counts()).toEqual({});
  });

  it("gives the counts of the newest message of any type", () => {
    const store = new TrackStore();
    store.accept(tracksMsg(3));
    store.accept(tracksMsg(4, [7], "face", { counts: { door: { occupancy: 2 } } }));
    expect(store.counts()).toEqual({ door: { occupancy: 2 } });
    store.accept(tracksMsg(5, [7], "people", { counts: [1, 2] }));
    expect(store.counts()).toEqual({});
  });
});

describe("overlayFor", () => {
  it("draws track ids in their label's colour when tracks go with the frame", () => {
    const msg = tracksMsg(3, [7, 8]);
    msg.tracks.push({ id: 9, label: "person", box: [0, 0, 0.1, 0.1], misses: 2 }); // coasting
    msg.tracks.push({ id: 10, label: "person", box: [0, 0] }); // malformed box
    const items = overlayFor(result(3), msg);
    expect(items.map((i) => i.text)).toEqual(["#7 person", "#8 person"]);
    expect(items.map((i) => i.id)).toEqual([7, 8]);
    // The label's colour, as the gateway's MJPEG and event snapshots draw it (engine/annotate.py).
    expect(items.map((i) => i.colour)).toEqual([labelColour("person"), labelColour("person")]);
  });

  it("draws the result's boxes as before without tracks", () => {
    expect(overlayFor(result(3), null)).toEqual([
      { box: [0.1, 0.2, 0.3, 0.6], colour: labelColour("person"), text: "person 91%", id: null },
    ]);
  });
});

describe("StreamState.overlay and the feed", () => {
  it("combines each type's frame with its own tracks", () => {
    const state = new StreamState("cam1");
    state.accept(result(5, "people"), 2);
    state.accept(result(5, "face"), 2);
    state.tracks.accept(tracksMsg(5, [7], "people"));
    state.tracks.accept(tracksMsg(6, [8], "people")); // newer than the frame: not drawn
    expect(state.overlay().map((i) => i.text).sort()).toEqual(["#7 person", "person 91%"]);
  });

  it("hands a tracks text message to the stream's listeners, and ignores a bad one", () => {
    const feed = new LiveFeed({ onStreams: () => {} });
    const got = [];
    feed.listen("cam1", (m) => got.push(m));
    feed.receive(JSON.stringify({ tracks: tracksMsg(4) }));
    feed.receive(JSON.stringify({ tracks: { stream: "cam1", seq: "x" } }));
    feed.receive(JSON.stringify({ tracks: { seq: 4, type: "people", tracks: [] } })); // no stream
    expect(got.map((m) => m.kind)).toEqual(["tracks"]);
    expect(feed.state("cam1").tracks.pick("people", 4).seq).toBe(4);
    expect(feed.state("cam1").tracks.invalid).toBe(1);
  });
});

describe("countRows", () => {
  it("has a row per stored rule then any other counted rule, counts in a fixed order", () => {
    const rules = [{ name: "gate" }, { name: "door" }];
    const counts = { door: { leave: 8, enter: 10, occupancy: 2, dwell: 1 }, gate: { "b->a": 3, "a->b": 4 },
      old: { enter: 1, bad: "x" } };
    const rows = countRows(rules, counts);
    expect(rows.map((r) => r.name)).toEqual(["gate", "door", "old"]);
    expect(rows[0].items).toEqual([{ key: "a->b", value: 4 }, { key: "b->a", value: 3 }]);
    expect(rows[1].items.map((i) => i.key)).toEqual(["occupancy", "enter", "leave", "dwell"]);
    expect(rows[2].values).toEqual({ enter: 1 });
    expect(countRows([{ name: "gate" }], {})[0].items).toEqual([]);
  });
});
