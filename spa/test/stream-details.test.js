// A stream's registry details as shown on a tile and the detail view.
import { describe, expect, it } from "vitest";
import { aspectOf, typesOf } from "../src/stream-details.js";

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
