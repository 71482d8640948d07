// The events list's module against a small stand-in of GET /api/events (the contract of
// doc/analytics.md "Wire": newest first, {"events": [...], "next": cursor or null}).
import { afterEach, describe, expect, it, vi } from "vitest";
import { EventPager, eventText, eventTotal, listEvents, snapshotPath } from "../src/events.js";

/** A stand-in route: 45 events of one stream, newest first, cursor = the last id given. */
function standIn() {
  const all = Array.from({ length: 45 }, (_, i) => ({
    id: `${1764670000000 + (44 - i) * 1000}-0`, stream: "cam1", type: "people", rule: "door",
    kind: "enter", direction: "", track_id: 44 - i, label: "person", seq: 44 - i, ts: 1764670000 + 44 - i,
  }));
  const calls = [];
  vi.stubGlobal("fetch", async (path) => {
    calls.push(path);
    const url = new URL(path, "http://x");
    const limit = Number(url.searchParams.get("limit"));
    const cursor = url.searchParams.get("cursor");
    const start = cursor ? all.findIndex((e) => e.id === cursor) + 1 : 0;
    const events = all.slice(start, start + limit);
    const next = start + limit < all.length ? events[events.length - 1].id : null;
    return new Response(JSON.stringify({ events, next }), { status: 200 });
  });
  return calls;
}

afterEach(() => vi.unstubAllGlobals());

describe("listEvents and the pager", () => {
  it("pages through a stream's events newest first and back", async () => {
    const calls = standIn();
    const pager = new EventPager();
    const seen = [];
    for (;;) {
      const page = await listEvents("cam1", pager.cursor);
      pager.loaded(page.next);
      seen.push(...page.events.map((e) => e.track_id));
      if (!pager.next) break;
      pager.older();
    }
    expect(seen).toEqual(Array.from({ length: 45 }, (_, i) => 44 - i));
    expect(calls[0]).toBe("/api/events?stream=cam1&limit=20");
    expect(calls[1]).toBe(`/api/events?stream=cam1&limit=20&cursor=${encodeURIComponent("1764670025000-0")}`);
    expect(pager.first).toBe(false);
    pager.newer();
    pager.newer();
    expect(pager.first).toBe(true);
    expect(pager.cursor).toBeNull();
  });

  it("reads a malformed answer as no events", async () => {
    vi.stubGlobal("fetch", async () => new Response('{"events": "x", "next": 5}', { status: 200 }));
    expect(await listEvents("cam1")).toEqual({ events: [], next: null });
  });
});

describe("what an event shows", () => {
  it("says what happened and where its snapshot is", () => {
    expect(eventText({ kind: "enter", rule: "door" })).toBe("entered door");
    expect(eventText({ kind: "leave", rule: "door" })).toBe("left door");
    expect(eventText({ kind: "dwell", rule: "door" })).toBe("stayed too long in door");
    expect(eventText({ kind: "cross", rule: "gate", direction: "a->b" })).toBe("crossed gate a->b");
    expect(snapshotPath("1764670000123-0")).toBe("/api/events/1764670000123-0/snapshot");
  });
});

describe("eventTotal: when the live counts say there are new events", () => {
  it("sums the counts events make, not a zone's occupancy", () => {
    const counts = { door: { occupancy: 2, enter: 9, leave: 7, dwell: 1 }, gate: { "a->b": 7, "b->a": 3 } };
    expect(eventTotal(counts)).toBe(27);
    expect(eventTotal({ ...counts, door: { ...counts.door, occupancy: 5 } })).toBe(27);
    expect(eventTotal({ ...counts, gate: { "a->b": 8, "b->a": 3 } })).toBe(28);
  });

  it("is null without counts and ignores what is not a number", () => {
    expect(eventTotal({})).toBeNull();
    expect(eventTotal(null)).toBeNull();
    expect(eventTotal({ door: null, gate: { "a->b": "7", "b->a": 3 } })).toBe(3);
  });
});
