// Display formatting: a missing or non-numeric value is an en dash, never "NaN".
import { describe, expect, it } from "vitest";
import { clock, count, fixed, list, ms, when } from "../src/format.js";

const DASH = "\u2013";

describe("fixed", () => {
  it("rounds to the digits asked, one by default", () => {
    expect(fixed(14.96)).toBe("15.0");
    expect(fixed(1.234, 2)).toBe("1.23");
    expect(fixed(0)).toBe("0.0");
  });

  it("is a dash for a missing or non-finite value", () => {
    for (const bad of [null, undefined, NaN, Infinity, -Infinity, "3", {}]) {
      expect(fixed(bad)).toBe(DASH);
    }
  });
});

describe("ms", () => {
  it("turns seconds into whole milliseconds", () => {
    expect(ms(0.1234)).toBe("123 ms");
    expect(ms(1.5)).toBe("1500 ms");
    expect(ms(0)).toBe("0 ms");
  });

  it("is a dash for a missing value", () => {
    expect(ms(null)).toBe(DASH);
    expect(ms(NaN)).toBe(DASH);
  });
});

describe("count", () => {
  it("rounds to a whole number", () => {
    expect(count(2.6)).toBe("3");
    expect(count(0)).toBe("0");
    expect(count(12)).toBe("12");
  });

  it("is a dash for a missing value", () => {
    expect(count(undefined)).toBe(DASH);
    expect(count("7")).toBe(DASH);
  });
});

describe("list", () => {
  it("joins with commas", () => {
    expect(list(["CPU", "GPU"])).toBe("CPU, GPU");
    expect(list(["nanodet"])).toBe("nanodet");
  });

  it("is a dash for an empty list or a non-list", () => {
    expect(list([])).toBe(DASH);
    expect(list(null)).toBe(DASH);
    expect(list("CPU")).toBe(DASH);
  });
});

describe("clock", () => {
  it("shows hours and minutes of an epoch time (TZ=UTC in vitest.config.js)", () => {
    const text = clock(Date.UTC(2026, 10, 21, 9, 5, 42) / 1000);
    expect(text).toMatch(/^0?9.05/);
    expect(text).not.toMatch(/42/);
  });
});

describe("when", () => {
  const now = Date.UTC(2026, 11, 2, 15, 0, 0);
  it("is the clock for today", () => {
    const today = Date.UTC(2026, 11, 2, 9, 5, 0) / 1000;
    expect(when(today, now)).toBe(clock(today));
  });

  it("adds the date for another day", () => {
    const text = when(Date.UTC(2026, 10, 21, 9, 5, 0) / 1000, now);
    expect(text).toMatch(/Nov/);
    expect(text).toMatch(/21/);
    expect(text).toMatch(/0?9.05/);
  });
});
