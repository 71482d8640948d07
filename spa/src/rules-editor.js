// The zone and line editor's state and geometry, without Vue or the DOM (RulesEditor.vue wires
// it to pointer events and the API). Rule points are fractions 0..1 of the frame, as the API
// keeps them (doc/analytics.md, "Rules"); pointer positions come in CSS pixels of the drawn
// picture, with its size, so hit tests use distances on screen.
import { streamPath, write, getJson } from "./api.js";

export const MAX_RULES = 32;
export const MAX_ZONE_POINTS = 32;
export const NAME_RE = /^[A-Za-z0-9_.-]{1,64}$/;
/** How near (CSS px) a pointer must be to grab a point or close a zone on its first point. */
export const GRAB_PX = 10;

const clamp01 = (v) => Math.min(1, Math.max(0, v));
// Four decimals: a tenth of a pixel on a 4K frame, and short JSON.
const round4 = (v) => Math.round(v * 10000) / 10000;

/** A pointer position (CSS px on a `w` x `h` picture) as a rule point, clamped to the frame. */
export function toNormal(px, py, w, h) {
  return [round4(clamp01(px / w)), round4(clamp01(py / h))];
}

export function toPixels([x, y], w, h) {
  return [x * w, y * h];
}

function distance([ax, ay], [bx, by]) {
  return Math.hypot(ax - bx, ay - by);
}

/** Distance (px) from `p` to the segment a-b (all in px). */
export function segmentDistance(p, a, b) {
  const [dx, dy] = [b[0] - a[0], b[1] - a[1]];
  const len2 = dx * dx + dy * dy;
  const t = len2 ? clamp01(((p[0] - a[0]) * dx + (p[1] - a[1]) * dy) / len2) : 0;
  return distance(p, [a[0] + t * dx, a[1] + t * dy]);
}

/** Whether `p` is inside the polygon `points` (even-odd rule; any consistent units). */
export function insidePolygon(p, points) {
  let inside = false;
  for (let i = 0, j = points.length - 1; i < points.length; j = i++) {
    const [xi, yi] = points[i];
    const [xj, yj] = points[j];
    if (yi > p[1] !== yj > p[1] && p[0] < ((xj - xi) * (p[1] - yi)) / (yj - yi) + xi) {
      inside = !inside;
    }
  }
  return inside;
}

/**
 * The arrow that shows a line's `a->b` direction, in px: from the line's middle towards the
 * side a track reaches when it crosses a->b. The counter (core/analytics/counting.py) calls
 * a->b a move from the left of a->b to its right as seen on the image (y down), which is the
 * direction (-dy, dx) on screen: for a line drawn top to bottom, towards the screen's left.
 */
export function lineArrow(points, w, h, length = 28) {
  const [a, b] = points.map((p) => toPixels(p, w, h));
  const mid = [(a[0] + b[0]) / 2, (a[1] + b[1]) / 2];
  const [dx, dy] = [b[0] - a[0], b[1] - a[1]];
  const len = Math.hypot(dx, dy) || 1;
  return { from: mid, to: [mid[0] + (-dy / len) * length, mid[1] + (dx / len) * length] };
}

/** The three points of an arrow head at `to`, pointing away from `from` (px). */
export function arrowHead(from, to, size = 8) {
  const [dx, dy] = [to[0] - from[0], to[1] - from[1]];
  const len = Math.hypot(dx, dy) || 1;
  const [ux, uy] = [dx / len, dy / len];
  const back = [to[0] - ux * size, to[1] - uy * size];
  return [to, [back[0] - uy * size * 0.6, back[1] + ux * size * 0.6],
    [back[0] + uy * size * 0.6, back[1] - ux * size * 0.6]];
}

/** Labels typed as "person, car": trimmed, without blanks or repeats. */
export function parseLabels(text) {
  return [...new Set(String(text).split(",").map((s) => s.trim()).filter(Boolean))];
}

/** A name not used yet: zone1, zone2 ... or line1 ... */
export function freshName(rules, kind) {
  const taken = new Set(rules.map((r) => r.name));
  for (let n = 1; ; n += 1) if (!taken.has(`${kind}${n}`)) return `${kind}${n}`;
}

/**
 * The checks the page can make before saving (the gateway checks everything, geometry
 * included, and its 400 is shown as it is): "" when none fails, else a message naming the rule.
 */
export function checkRules(rules) {
  if (rules.length > MAX_RULES) return `at most ${MAX_RULES} rules per stream`;
  const names = new Set();
  for (const [i, rule] of rules.entries()) {
    const which = `rule ${i} (${rule.name || "unnamed"})`; // counted from 0, as the gateway does
    if (!NAME_RE.test(rule.name)) return `${which}: a name is 1 to 64 of A-Z a-z 0-9 _ . -`;
    if (names.has(rule.name)) return `${which}: another rule has this name`;
    names.add(rule.name);
  }
  return "";
}

/** The body of PUT /api/streams/{id}/rules. Fields the editor does not know stay as loaded. */
export function rulesDocument(rules) {
  return {
    rules: rules.map((rule) => {
      const out = { ...rule, points: rule.points.map(([x, y]) => [x, y]) };
      if (!out.labels || !out.labels.length) delete out.labels;
      return out;
    }),
  };
}

/** Editing state: the rules, the shape being drawn, the selection and a dragged point. */
export class RuleEditor {
  constructor(rules = []) {
    this.load(rules);
  }

  load(rules) {
    this.rules = rules.map((r) => ({ ...r, points: r.points.map(([x, y]) => [x, y]) }));
    this.mode = "idle"; // "zone": clicking a polygon's points; "line": its two points
    this.draft = [];
    this.selected = -1;
    this.drag = null; // {rule, point}
    this.dirty = false;
  }

  start(kind) {
    this.mode = kind;
    this.draft = [];
    this.selected = -1;
  }

  cancel() {
    this.mode = "idle";
    this.draft = [];
  }

  /** The rule and point under the pointer (px), the nearest within GRAB_PX, or null. */
  pointAt(px, py, w, h) {
    let best = null;
    let bestD = GRAB_PX;
    this.rules.forEach((rule, r) => rule.points.forEach((p, i) => {
      const d = distance([px, py], toPixels(p, w, h));
      if (d <= bestD) [best, bestD] = [{ rule: r, point: i }, d];
    }));
    return best;
  }

  /** The rule under the pointer: near a line, or inside a zone (the last drawn on top). */
  ruleAt(px, py, w, h) {
    for (let r = this.rules.length - 1; r >= 0; r -= 1) {
      const pts = this.rules[r].points.map((p) => toPixels(p, w, h));
      const hit = this.rules[r].kind === "line"
        ? segmentDistance([px, py], pts[0], pts[1]) <= GRAB_PX
        : insidePolygon([px, py], pts);
      if (hit) return r;
    }
    return -1;
  }

  pointerDown(px, py, w, h) {
    const point = toNormal(px, py, w, h);
    if (this.mode === "zone") {
      const first = this.draft[0];
      if (this.draft.length >= 3 && distance([px, py], toPixels(first, w, h)) <= GRAB_PX) {
        this.finishZone();
      } else if (this.draft.length < MAX_ZONE_POINTS) {
        this.draft.push(point);
      }
      return;
    }
    if (this.mode === "line") {
      const first = this.draft[0];
      if (first && first[0] === point[0] && first[1] === point[1]) return; // zero length
      this.draft.push(point);
      if (this.draft.length === 2) this.add("line", this.draft);
      return;
    }
    const grab = this.pointAt(px, py, w, h);
    this.drag = grab;
    this.selected = grab ? grab.rule : this.ruleAt(px, py, w, h);
  }

  pointerMove(px, py, w, h) {
    if (!this.drag) return;
    this.rules[this.drag.rule].points[this.drag.point] = toNormal(px, py, w, h);
    this.dirty = true;
  }

  pointerUp() {
    this.drag = null;
  }

  /** Close the polygon being drawn (three points at least). */
  finishZone() {
    if (this.mode === "zone" && this.draft.length >= 3) this.add("zone", this.draft);
  }

  add(kind, points) {
    this.rules.push({ name: freshName(this.rules, kind), kind, points: [...points], labels: [] });
    this.selected = this.rules.length - 1;
    this.mode = "idle";
    this.draft = [];
    this.dirty = true;
  }

  remove(index) {
    this.rules.splice(index, 1);
    if (this.selected === index) this.selected = -1;
    else if (this.selected > index) this.selected -= 1;
    this.dirty = true;
  }

  rename(index, name) {
    this.rules[index].name = name.trim();
    this.dirty = true;
  }

  setLabels(index, text) {
    this.rules[index].labels = parseLabels(text);
    this.dirty = true;
  }
}

/** GET a stream's rules: {rules, version}. */
export function loadRules(stream) {
  return getJson(streamPath(stream, "/rules"));
}

/** PUT a stream's rules (with the CSRF token, as every write); resolves to the stored answer. */
export function saveRules(stream, rules) {
  return write("PUT", streamPath(stream, "/rules"), rulesDocument(rules));
}
