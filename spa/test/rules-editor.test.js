// The zone and line editor without a browser: geometry (hit tests, the a->b arrow on the
// counter's side), drawing a zone and a line with pointer events, dragging, deleting, names
// and labels, the checks before saving, and GET/PUT with the CSRF token and the 400 message.
import { afterEach, describe, expect, it, vi } from "vitest";
import { ApiError, setAuthHooks } from "../src/api.js";
import { canEditRules } from "../src/auth/roles.js";
import {
  RuleEditor, arrowHead, checkRules, freshName, insidePolygon, lineArrow, loadRules, parseLabels,
  rulesDocument, saveRules, segmentDistance, toNormal,
} from "../src/rules-editor.js";

const W = 800;
const H = 600;

// The counter's side test (core/analytics/geometry.py: cross): < 0 left of a->b, > 0 right.
const cross = (a, b, p) => (b[0] - a[0]) * (p[1] - a[1]) - (b[1] - a[1]) * (p[0] - a[0]);

describe("geometry", () => {
  it("maps pointer pixels to clamped, rounded fractions of the frame", () => {
    expect(toNormal(400, 150, W, H)).toEqual([0.5, 0.25]);
    expect(toNormal(-20, 700, W, H)).toEqual([0, 1]);
    expect(toNormal(100 / 3, 0, W, H)).toEqual([0.0417, 0]);
  });

  it("measures distances to a segment and tells inside a polygon", () => {
    expect(segmentDistance([5, 5], [0, 0], [10, 0])).toBe(5);
    expect(segmentDistance([-3, 4], [0, 0], [10, 0])).toBe(5); // beyond the end: to the end
    const square = [[0, 0], [10, 0], [10, 10], [0, 10]];
    expect(insidePolygon([5, 5], square)).toBe(true);
    expect(insidePolygon([15, 5], square)).toBe(false);
  });

  it("points the arrow to the side an a->b crossing goes to, as the counter decides", () => {
    // Drawn top to bottom: a->b is a walk from the screen's right to its left (doc/analytics.md).
    const down = lineArrow([[0.5, 0.1], [0.5, 0.9]], W, H);
    expect(down.to[0]).toBeLessThan(down.from[0]);
    for (const points of [[[0.5, 0.1], [0.5, 0.9]], [[0.1, 0.5], [0.9, 0.5]], [[0.8, 0.2], [0.3, 0.7]],
      [[0.2, 0.9], [0.25, 0.1]]]) {
      const { from, to } = lineArrow(points, W, H);
      const [a, b] = points.map(([x, y]) => [x * W, y * H]);
      // The arrow starts on the line and ends on its right: a->b crossings go that way.
      expect(Math.abs(cross(a, b, from))).toBeLessThan(1e-6);
      expect(cross(a, b, to)).toBeGreaterThan(0);
    }
    const head = arrowHead([0, 0], [10, 0], 4);
    expect(head[0]).toEqual([10, 0]);
    expect(head[1][0]).toBeCloseTo(6);
    expect(head[2][0]).toBeCloseTo(6);
  });

  it("parses labels and finds fresh names", () => {
    expect(parseLabels(" person, car,,person ")).toEqual(["person", "car"]);
    expect(parseLabels("")).toEqual([]);
    expect(freshName([{ name: "zone1" }, { name: "line1" }], "zone")).toBe("zone2");
  });
});

describe("RuleEditor", () => {
  it("draws a zone with clicks and closes it on its first point", () => {
    const ed = new RuleEditor();
    ed.start("zone");
    ed.pointerDown(100, 100, W, H);
    ed.pointerDown(300, 100, W, H);
    expect(ed.draft.length).toBe(2);
    ed.pointerDown(102, 101, W, H); // the first point, but only 2 so far: a third point
    ed.pointerDown(300, 300, W, H);
    ed.pointerDown(103, 98, W, H); // near the first point: closes
    expect(ed.mode).toBe("idle");
    expect(ed.rules).toEqual([{ name: "zone1", kind: "zone", labels: [],
      points: [[0.125, 0.1667], [0.375, 0.1667], [0.1275, 0.1683], [0.375, 0.5]] }]);
    expect(ed.selected).toBe(0);
    expect(ed.dirty).toBe(true);
  });

  it("closes a zone with Finish only from three points, and cancels a draft", () => {
    const ed = new RuleEditor();
    ed.start("zone");
    ed.pointerDown(100, 100, W, H);
    ed.pointerDown(200, 100, W, H);
    ed.finishZone();
    expect(ed.rules).toEqual([]);
    ed.pointerDown(200, 200, W, H);
    ed.finishZone();
    expect(ed.rules[0].points.length).toBe(3);
    ed.start("line");
    ed.pointerDown(10, 10, W, H);
    ed.cancel();
    expect(ed.mode).toBe("idle");
    expect(ed.draft).toEqual([]);
    expect(ed.rules.length).toBe(1);
  });

  it("draws a line with two clicks, never of zero length", () => {
    const ed = new RuleEditor([{ name: "line1", kind: "line", points: [[0, 0], [1, 1]] }]);
    ed.start("line");
    ed.pointerDown(400, 60, W, H);
    ed.pointerDown(400, 60, W, H); // the same point again: ignored
    expect(ed.mode).toBe("line");
    ed.pointerDown(400, 540, W, H);
    expect(ed.rules[1]).toEqual({ name: "line2", kind: "line", points: [[0.5, 0.1], [0.5, 0.9]], labels: [] });
  });

  it("drags a point, selects a shape, deletes a rule, renames and sets labels", () => {
    const ed = new RuleEditor([
      { name: "door", kind: "zone", points: [[0.1, 0.1], [0.4, 0.1], [0.4, 0.4]], labels: ["person"] },
      { name: "gate", kind: "line", points: [[0.5, 0.1], [0.5, 0.9]] },
    ]);
    ed.pointerDown(404, 62, W, H); // near gate's a
    expect(ed.drag).toEqual({ rule: 1, point: 0 });
    ed.pointerMove(440, 30, W, H);
    ed.pointerUp();
    ed.pointerMove(0, 0, W, H); // not dragging any more
    expect(ed.rules[1].points).toEqual([[0.55, 0.05], [0.5, 0.9]]);
    ed.pointerDown(300, 100, W, H); // inside the zone, away from its points
    expect(ed.drag).toBeNull();
    expect(ed.selected).toBe(0);
    ed.pointerDown(700, 500, W, H); // nothing there
    expect(ed.selected).toBe(-1);
    ed.rename(1, " entrance ");
    ed.setLabels(1, "person, car");
    expect(ed.rules[1]).toMatchObject({ name: "entrance", labels: ["person", "car"] });
    ed.selected = 1;
    ed.remove(0);
    expect(ed.rules.map((r) => r.name)).toEqual(["entrance"]);
    expect(ed.selected).toBe(0);
  });

  it("loads a copy: editing never changes the document it was given", () => {
    const doc = [{ name: "gate", kind: "line", points: [[0.5, 0.1], [0.5, 0.9]] }];
    const ed = new RuleEditor(doc);
    ed.pointerDown(400, 60, W, H);
    ed.pointerMove(0, 0, W, H);
    expect(doc[0].points[0]).toEqual([0.5, 0.1]);
  });
});

describe("before saving", () => {
  it("names the rule whose name is wrong or taken (counted from 0, as the gateway does)", () => {
    const zone = (name) => ({ name, kind: "zone", points: [[0, 0], [1, 0], [1, 1]] });
    expect(checkRules([zone("a"), zone("b")])).toBe("");
    expect(checkRules([zone("a"), zone("has space")])).toMatch(/^rule 1 \(has space\): a name is/);
    expect(checkRules([zone("a"), zone("a")])).toBe("rule 1 (a): another rule has this name");
    expect(checkRules([zone("")])).toMatch(/^rule 0 \(unnamed\)/);
    expect(checkRules(Array.from({ length: 33 }, (_, i) => zone(`z${i}`)))).toMatch(/at most 32/);
  });

  it("sends the API's document, keeping fields the editor does not know", () => {
    const sinks = [{ kind: "webhook", url: "https://example.org/hook" }];
    expect(rulesDocument([
      { name: "gate", kind: "line", points: [[0.5, 0.1], [0.5, 0.9]], labels: [], sinks },
      { name: "door", kind: "zone", points: [[0, 0], [1, 0], [1, 1]], labels: ["person"] },
    ])).toEqual({ rules: [
      { name: "gate", kind: "line", points: [[0.5, 0.1], [0.5, 0.9]], sinks },
      { name: "door", kind: "zone", points: [[0, 0], [1, 0], [1, 1]], labels: ["person"] },
    ] });
  });
});

describe("rules over the API", () => {
  afterEach(() => {
    setAuthHooks({ csrf: () => null, loggedOut: () => {}, refreshCsrf: null });
    vi.unstubAllGlobals();
  });

  it("loads with GET and saves with PUT and the CSRF token; a 400's message comes through", async () => {
    setAuthHooks({ csrf: () => "tok", loggedOut: () => {}, refreshCsrf: null });
    const calls = [];
    vi.stubGlobal("fetch", async (path, options) => {
      calls.push({ path, method: options.method, headers: options.headers, body: options.body });
      if (options.method === "PUT" && JSON.parse(options.body).rules.length > 1) {
        return new Response('{"error": "rule 2 (b): the line has zero length"}', { status: 400 });
      }
      if (options.method === "PUT") return new Response(`{"version": 2, ${options.body.slice(1)}`, { status: 200 });
      return new Response('{"stream": "cam 1", "version": 1, "rules": []}', { status: 200 });
    });
    expect(await loadRules("cam 1")).toMatchObject({ version: 1, rules: [] });
    expect(calls[0]).toMatchObject({ path: "/api/streams/cam%201/rules", method: "GET" });
    const line = { name: "a", kind: "line", points: [[0.5, 0.1], [0.5, 0.9]], labels: [] };
    const saved = await saveRules("cam 1", [line]);
    expect(saved).toEqual({ version: 2, rules: [{ name: "a", kind: "line", points: [[0.5, 0.1], [0.5, 0.9]] }] });
    expect(calls[1]).toMatchObject({ path: "/api/streams/cam%201/rules", method: "PUT" });
    expect(calls[1].headers["X-CSRF-Token"]).toBe("tok");
    const refused = saveRules("cam 1", [line, { ...line, name: "b" }]);
    await expect(refused).rejects.toBeInstanceOf(ApiError);
    await expect(refused).rejects.toThrow("rule 2 (b): the line has zero length");
  });

  it("lets operators and admins edit, viewers only look", () => {
    const user = (role, auth = true) => ({ name: "u", role, auth });
    expect(canEditRules(user("viewer"))).toBe(false);
    expect(canEditRules(user("operator"))).toBe(true);
    expect(canEditRules(user("admin"))).toBe(true);
    expect(canEditRules(user("viewer", false))).toBe(true); // no authentication: admin
    expect(canEditRules(null)).toBe(false);
  });
});
