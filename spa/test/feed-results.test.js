// Results as the websocket sends them: a frame's JPEG once, with its first result (binary),
// every other type's result as text. Both reach the stream's listeners; only a binary message
// can be a new frame to decode.
import { describe, expect, it } from "vitest";
import { LiveFeed } from "../src/live/feed.js";
import { frameMessage } from "./frame-message.js";

function result(seq, type) {
  return { seq, type, ts_capture: 100, ts_done: 100.05, detections: [] };
}

const JPEG = Uint8Array.of(0xff, 0xd8, 0xff, 0xd9);

describe("LiveFeed results", () => {
  it("hands text results to the stream's listeners without a JPEG, never as a new frame", () => {
    const feed = new LiveFeed({ onStreams: () => {} });
    const got = [];
    feed.listen("cam1", (m) => got.push(m));
    feed.receive(frameMessage({ stream: "cam1", id: "1-0", result: result(5, "people") }, JPEG));
    for (const [id, type] of [["1-1", "face"], ["1-2", "car"]]) {
      feed.receive(JSON.stringify({ result: result(5, type), stream: "cam1", id }));
    }
    // A result whose frame never came (skipped on the way): boxes, no picture.
    feed.receive(JSON.stringify({ result: result(6, "face"), stream: "cam1", id: "2-0" }));
    expect(got.map((m) => [m.kind, m.result.type, m.jpeg === null])).toEqual([
      ["new", "people", false],
      ["same", "face", true],
      ["same", "car", true],
      ["late", "face", true],
    ]);
    const state = feed.state("cam1");
    expect(state.frames).toBe(1);
    expect(state.messages).toBe(4);
    expect(state.types()).toEqual(["car", "face", "people"]);
    expect(state.byType.get("face").seq).toBe(6);
  });

  it("keeps a text result of another stream with that stream only", () => {
    const feed = new LiveFeed({ onStreams: () => {} });
    const got = [];
    feed.listen("cam1", (m) => got.push(m));
    feed.receive(JSON.stringify({ result: result(1, "face"), stream: "cam2", id: "1-0" }));
    expect(got).toEqual([]);
    expect(feed.state("cam2").types()).toEqual(["face"]);
    expect(feed.states.has("cam1")).toBe(false);
  });
});
