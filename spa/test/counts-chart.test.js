// The counts chart's arithmetic: scale tops, paths broken at gaps, ticks, description.
import { describe, expect, it } from "vitest";
import { labelColour } from "../src/colours.js";
import { describeCounts, layoutCounts, niceMax, seriesPath, tickEvery } from "../src/counts-chart.js";

// A plot area of 240 x 182 px at (36, 12): over 60 s, 4 px a second; 5 detections = 182 px.
const BOX = { width: 288, height: 220, pad: { left: 36, right: 12, top: 12, bottom: 26 }, minutes: 1 };

describe("niceMax", () => {
  it.each([
    [0, 5], [3, 5], [5, 5], [6, 10], [10, 10], [12, 20], [20, 20], [21, 50], [51, 100],
    [1000, 1000], [1001, 2000],
  ])("%d -> %d", (value, top) => {
    expect(niceMax(value)).toBe(top);
  });
});

describe("tickEvery", () => {
  it("is a minute up to 5 minutes, 5 up to 15, else 15", () => {
    expect([1, 5, 6, 15, 16, 60].map(tickEvery)).toEqual([60, 60, 300, 300, 900, 900]);
  });
});

describe("seriesPath", () => {
  const x = (t) => t * 10;
  const y = (n) => 100 - n;

  it("draws each bucket at its middle, joined while buckets follow each other", () => {
    expect(seriesPath([[0, 1], [2, 3], [4, 5]], x, y, 2)).toBe("M10.0,99.0 L30.0,97.0 L50.0,95.0");
  });

  it("breaks the line where buckets are missing, and draws a lone bucket as a dot", () => {
    expect(seriesPath([[0, 1], [2, 2], [8, 4], [14, 6], [16, 7]], x, y, 2)).toBe(
      "M10.0,99.0 L30.0,98.0 M90.0,96.0 h0.1 M150.0,94.0 L170.0,93.0",
    );
    expect(seriesPath([[4, 3]], x, y, 2)).toBe("M50.0,97.0 h0.1");
  });

  it("is empty for an empty series", () => {
    expect(seriesPath([], x, y, 2)).toBe("");
  });
});

describe("layoutCounts", () => {
  const body = {
    since: 1200,
    until: 1260,
    step: 1,
    series: { person: [[1200, 2], [1201, 5]], car: [[1230, 1]] },
  };

  it("is null before the first answer", () => {
    expect(layoutCounts(null, BOX)).toBeNull();
  });

  it("scales time across the plot's width and counts up its height", () => {
    const chart = layoutCounts(body, BOX);
    expect([chart.x0, chart.x1, chart.y0, chart.y1]).toEqual([36, 276, 194, 12]);
    expect(chart.top).toBe(5);
    expect(chart.points).toBe(3);
    const person = chart.lines.find((l) => l.label === "person");
    expect(person.path).toBe("M38.0,121.2 L42.0,12.0");
  });

  it("gives one line per label, sorted, with its colour, last and peak", () => {
    const chart = layoutCounts(body, BOX);
    expect(chart.lines.map((l) => [l.label, l.colour, l.last, l.peak])).toEqual([
      ["car", labelColour("car"), 1, 1],
      ["person", labelColour("person"), 5, 5],
    ]);
  });

  it("ticks the counts at 0, half and the top, and the time on whole minutes", () => {
    const since = 10 * 3600 + 20 * 60 - 30; // 10:19:30 UTC
    const chart = layoutCounts({ since, until: since + 60, step: 1, series: { person: [[since, 7]] } }, BOX);
    expect(chart.top).toBe(10);
    expect(chart.yTicks).toEqual([{ n: 0, y: 194 }, { n: 5, y: 103 }, { n: 10, y: 12 }]);
    expect(chart.xTicks).toEqual([{ t: since + 30, x: 156, text: expect.stringMatching(/^10.20/) }]);
  });

  it("has no lines for an answer without series", () => {
    const chart = layoutCounts({ since: 0, until: 60, step: 1 }, BOX);
    expect(chart.lines).toEqual([]);
    expect(chart.points).toBe(0);
    expect(chart.top).toBe(5);
  });

  it("stays finite when the answer's range is empty", () => {
    const chart = layoutCounts({ since: 60, until: 60, step: 1, series: { a: [[60, 1]] } }, BOX);
    expect(chart.lines[0].path).not.toMatch(/NaN|Infinity/);
    expect(chart.xTicks.map((t) => t.t)).toEqual([60]);
  });
});

describe("describeCounts", () => {
  it("says when there is nothing to show", () => {
    expect(describeCounts(null, 5, 5)).toBe("No detections in the last 5 minutes.");
    expect(describeCounts({ lines: [] }, 15, 15)).toBe("No detections in the last 15 minutes.");
  });

  it("names each label's current and peak count", () => {
    const chart = layoutCounts(
      { since: 0, until: 60, step: 1, series: { person: [[0, 4], [1, 2]], face: [[5, 1]] } },
      BOX,
    );
    expect(describeCounts(chart, 1, 1)).toBe(
      "Most detections per label in one frame, every 1 s over the last 1 minutes. " +
        "face: now 1, peak 1; person: now 2, peak 4.",
    );
  });
});
