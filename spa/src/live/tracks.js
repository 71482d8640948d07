// Live tracks of one stream ({"tracks": {...}} websocket messages, written by `ei track`;
// doc/analytics.md "Wire"): which tracks message goes with the frame on screen, the boxes to
// draw with their `#id label` in their label's colour, and the newest counts. Plain JS like
// stream-state.js: it changes on every message, components sample it.
import { labelColour } from "../colours.js";

// Tracks messages kept per type: tracks usually trail their frame by a few frames at most.
const KEEP = 32;

/** Whether `message` looks like a tracks entry we can draw (the server only checks JSON). */
export function isTracksMessage(message) {
  return (
    message !== null && typeof message === "object" && typeof message.type === "string" &&
    Number.isInteger(message.seq) && Array.isArray(message.tracks)
  );
}

export class TrackStore {
  constructor() {
    this.byType = new Map(); // type -> messages sorted by seq, at most KEEP
    this.newest = null; // the last message received (for counts), any type
    this.received = 0;
    this.invalid = 0;
  }

  /** Record a tracks message; returns false (and counts it) when it is not one. */
  accept(message) {
    if (!isTracksMessage(message)) {
      this.invalid += 1;
      return false;
    }
    this.received += 1;
    let list = this.byType.get(message.type);
    if (!list) this.byType.set(message.type, (list = []));
    // A stream that restarts counts seqs from 0 again: far below all we hold, which is of the
    // old run (a message merely late by more than the window would be of no use either).
    if (list.length && message.seq < list[0].seq - KEEP) list.length = 0;
    const at = list.findIndex((m) => m.seq >= message.seq);
    if (at < 0) list.push(message);
    else if (list[at].seq === message.seq) list[at] = message;
    else list.splice(at, 0, message);
    if (list.length > KEEP) list.shift();
    this.newest = message;
    return true;
  }

  /**
   * The tracks message of `type` for the frame `seq`: the one of that seq when it has arrived,
   * else the newest not newer than the frame (tracks lag), else null (none yet, or all newer:
   * a frame older than every tracks message is drawn with its own boxes).
   */
  pick(type, seq) {
    const list = this.byType.get(type);
    if (!list) return null;
    let best = null;
    for (const m of list) {
      if (m.seq > seq) break;
      best = m;
    }
    return best;
  }

  /** Counts per rule of the newest message ({} before any), as ei track reported them. */
  counts() {
    const counts = this.newest?.counts;
    return counts && typeof counts === "object" && !Array.isArray(counts) ? counts : {};
  }
}

/**
 * What to draw for one type's result: its tracks (when a tracks message goes with the frame:
 * `#id label` in the label's colour, coasting tracks skipped) or its detections (label and score,
 * the label's colour). Each item: {box, colour, text, id}.
 */
export function overlayFor(result, tracksMessage) {
  if (tracksMessage) {
    return tracksMessage.tracks
      .filter((t) => Array.isArray(t.box) && t.box.length === 4 && !(t.misses > 0))
      .map((t) => ({ box: t.box, colour: labelColour(t.label), text: `#${t.id} ${t.label}`, id: t.id }));
  }
  return (result.detections || []).map((det) => ({
    box: det.box,
    colour: labelColour(det.label),
    text: `${det.label} ${Math.round(det.score * 100)}%`,
    id: null,
  }));
}

// The order counts are shown in; anything else ei track reports comes after, by name.
const COUNT_ORDER = ["occupancy", "enter", "leave", "dwell", "a->b", "b->a"];

/**
 * Rows of the live counts table: a row per stored rule (in its order), then any rule only the
 * counts name; each with its counts as {key, value} in a fixed order, numbers only.
 */
export function countRows(rules, counts) {
  const names = [...rules.map((r) => r.name)];
  for (const name of Object.keys(counts || {}).sort()) if (!names.includes(name)) names.push(name);
  return names.map((name) => {
    const raw = counts?.[name];
    const values = {};
    if (raw && typeof raw === "object") {
      for (const [key, value] of Object.entries(raw)) if (Number.isFinite(value)) values[key] = value;
    }
    const rank = (k) => (COUNT_ORDER.includes(k) ? COUNT_ORDER.indexOf(k) : COUNT_ORDER.length);
    const items = Object.keys(values)
      .sort((a, b) => rank(a) - rank(b) || a.localeCompare(b))
      .map((key) => ({ key, value: values[key] }));
    return { name, values, items };
  });
}
