// Label colours must match the gateway's (engine/annotate.py label_colour, OpenCV HSV).
import { describe, expect, it } from "vitest";
import { labelColour } from "../src/colours.js";

describe("labelColour", () => {
  // From elastic_inference.engine.annotate.label_colour (BGR there, RGB here).
  it.each([
    ["person", "rgb(138, 35, 255)"],
    ["face", "rgb(255, 116, 35)"],
    ["car", "rgb(57, 255, 35)"],
    ["Person", "rgb(35, 255, 64)"],
    ["caf\u00e9", "rgb(255, 160, 35)"],
  ])("%s is %s, as in snapshots and MJPEG", (label, rgb) => {
    expect(labelColour(label)).toBe(rgb);
  });

  it("is the same on every call", () => {
    expect(labelColour("dog")).toBe(labelColour("dog"));
  });
});
