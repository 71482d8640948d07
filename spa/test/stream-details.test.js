// A stream's registry details as shown on a tile and the detail view.
import { describe, expect, it } from "vitest";
import { aspectOf, figures, typesOf } from "../src/stream-details.js";

describe("typesOf", () => {
  it("lists the registry's declared types", () => {
    expect(typesOf({ types: ["people", "face"] }, { types: ["car"] })).toBe("people, face");
  });

  it("falls back to the types seen in results before the registry answers", () => {
    expect(typesOf({ id: "a" }, { types: ["car", "people"] })).toBe("car, people");
    expect(typesOf(null, { types: ["face"] })).toBe("face");
    expect(typesOf({ types: [] }, { types: [] })).toBe("");
  });

  it("ignores a types field that is not a list", () => {
    expect(typesOf({ types: "people" }, { types: ["face"] })).toBe("face");
  });
});

describe("aspectOf", () => {
  it("is the frame's width / height when known", () => {
    expect(aspectOf({ w: 768, h: 576 })).toBe("768 / 576");
  });

  it("is 4 / 3 when the size is unknown or nonsense", () => {
    for (const stream of [null, undefined, {}, { w: 0, h: 576 }, { w: 768, h: -1 }, { w: "768", h: null }]) {
      expect(aspectOf(stream)).toBe("4 / 3");
    }
  });
});

describe("figures", () => {
  const stats = { fps: 14.96, paintFps: null, latency: 0.2345, pipeline: 0.05, detections: 3, drops: 12 };

  it("formats the figures asked for, in that order", () => {
    expect(figures(stats, ["drops", "fps", "paintFps", "latency", "pipeline", "detections"]).map(
      (f) => [f.label, f.value],
    )).toEqual([
      ["drops", "12"],
      ["fps", "15.0"],
      ["painted fps", "\u2013"],
      ["latency", "235 ms"],
      ["pipeline", "50 ms"],
      ["in view", "3"],
    ]);
  });

  it("explains the figures that need it on hover", () => {
    const byName = Object.fromEntries(figures(stats, ["fps", "latency", "drops"]).map((f) => [f.name, f]));
    expect(byName.fps.title).toBeUndefined();
    expect(byName.latency.title).toBe("browser clock minus capture time");
    expect(byName.drops.title).toMatch(/seq gaps/);
  });

  it("throws on an unknown figure", () => {
    expect(() => figures(stats, ["fps", "fsp"])).toThrow('unknown stream figure "fsp"');
  });
});
