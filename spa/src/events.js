// A stream's zone and line events for the events list (components/EventsList.vue): the API
// paths (doc/analytics.md "Wire": GET /api/events, newest first, paged with `next`; the
// snapshot of each at /api/events/{id}/snapshot, an <img> sends the session cookie) and what
// to show for an event.
import { getJson, withQuery } from "./api.js";

export const EVENTS_PAGE = 20;
/** The newest page is asked again this often while the list is open (and on new counts). */
export const EVENTS_REFRESH_MS = 10000;
/** The least time between two refreshes that new counts ask for (a busy door counts often). */
export const EVENTS_MIN_GAP_MS = 2000;
const EVENT_COUNTS = ["enter", "leave", "dwell", "a->b", "b->a"];

export function snapshotPath(id) {
  return `/api/events/${encodeURIComponent(id)}/snapshot`;
}

/** One page of a stream's events: {events, next}; `cursor` is a previous page's `next`. */
export async function listEvents(stream, cursor = null, limit = EVENTS_PAGE) {
  const body = await getJson(withQuery("/api/events", { stream, limit, cursor }));
  const events = Array.isArray(body?.events) ? body.events : [];
  return { events, next: typeof body?.next === "string" && body.next ? body.next : null };
}

/**
 * The sum of a tracks message's counts that events make (not a zone's occupancy), or null
 * without counts: when it changes, the stream has new events to show.
 */
export function eventTotal(counts) {
  if (!counts || typeof counts !== "object" || !Object.keys(counts).length) return null;
  let total = 0;
  for (const values of Object.values(counts)) {
    if (!values || typeof values !== "object") continue;
    for (const key of EVENT_COUNTS) {
      if (Number.isFinite(values[key])) total += values[key];
    }
  }
  return total;
}

/** What happened, in words: "entered door", "crossed gate a->b", "dwelt in door". */
export function eventText(event) {
  const rule = event.rule ?? "?";
  switch (event.kind) {
    case "enter": return `entered ${rule}`;
    case "leave": return `left ${rule}`;
    case "dwell": return `stayed too long in ${rule}`;
    case "cross": return `crossed ${rule} ${event.direction || ""}`.trim();
    default: return `${event.kind} ${rule}`;
  }
}

/**
 * Paging over a cursor API: `pages` holds the cursor of each page shown so far (null: the
 * newest), so "Newer" goes back without the server keeping state.
 */
export class EventPager {
  constructor() {
    this.cursors = [null];
    this.next = null;
  }

  get cursor() {
    return this.cursors[this.cursors.length - 1];
  }

  get first() {
    return this.cursors.length === 1;
  }

  /** Record the `next` of the page just loaded. */
  loaded(next) {
    this.next = next;
  }

  older() {
    if (this.next) this.cursors.push(this.next);
    this.next = null;
  }

  newer() {
    if (!this.first) this.cursors.pop();
    this.next = null;
  }
}
