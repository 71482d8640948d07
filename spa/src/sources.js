// Managed sources for the sources view (components/SourcesView.vue): the API paths, the checks
// the form makes before sending (the same limits as the gateway's, doc/sources.md, so a typo is
// caught at once; the gateway checks again and its 400 is shown as it is), each source's state
// as a badge, and the inference types the form offers.
import { getJson, write } from "./api.js";

export const ID_RE = /^[A-Za-z0-9_.-]{1,64}$/;
export const MAX_TYPES = 8;
export const MAX_FPS = 60;
export const MIN_WIDTH = 64;
export const MAX_WIDTH = 3840;
export const MAX_SOURCE_LEN = 2048;
/** The built-in inference types (engine/models.py); types with a worker come from /api/status. */
export const BUILTIN_TYPES = ["car", "face", "object", "people"];
/** The states the pool reports (doc/sources.md), each with its badge's colour class. */
export const STATES = ["connecting", "live", "retrying", "failed", "ended", "pending", "disabled"];

export function sourcePath(id) {
  return `/api/sources/${encodeURIComponent(id)}`;
}

/** Every source with its state, sorted by id. */
export async function listSources() {
  const body = await getJson("/api/sources");
  const list = Array.isArray(body?.sources) ? body.sources : [];
  return [...list].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
}

export function createSource(body) {
  return write("POST", "/api/sources", body);
}

export function replaceSource(body) {
  return write("PUT", sourcePath(body.id), body);
}

export function deleteSource(id) {
  return write("DELETE", sourcePath(id));
}

/**
 * {state, replica, reconnects, fps} of a source as the API answers it: `state` is the pool's
 * report (an object), or its name alone with the other fields beside it. An unknown or missing
 * state reads "unknown" (no badge colour), never a blank cell.
 */
export function stateOf(source) {
  const raw = source?.state;
  const report = raw && typeof raw === "object" ? raw : { ...source, state: raw };
  const name = typeof report.state === "string" && report.state ? report.state : "unknown";
  return {
    state: name,
    known: STATES.includes(name),
    replica: typeof report.replica === "string" && report.replica ? report.replica : null,
    reconnects: Number.isFinite(report.reconnects) ? report.reconnects : null,
    fps: Number.isFinite(report.fps) ? report.fps : null,
  };
}

/** The types to offer as checkboxes: built-in, those the system reports, those in use. */
export function typeChoices(status, sources = [], chosen = []) {
  const names = new Set(BUILTIN_TYPES);
  for (const t of status?.types || []) if (typeof t?.type === "string") names.add(t.type);
  for (const s of sources || []) for (const t of s.types || []) names.add(t);
  for (const t of chosen) names.add(t);
  return [...names].sort();
}

/** A whole number from a field's text ("" is not 0); NaN when it is not one. */
function number(value) {
  const text = String(value ?? "").trim();
  return text === "" ? NaN : Number(text);
}

/**
 * The API's body from the form's fields ({id, source, types: [...], fps, maxWidth, enabled});
 * throws an Error naming the field that is wrong, with the limits the gateway applies.
 */
export function sourceRequest({ id, source, types, fps, maxWidth, enabled }) {
  const sid = String(id ?? "").trim();
  if (!ID_RE.test(sid)) throw new Error("The id is 1 to 64 of A-Z a-z 0-9 _ . - (it becomes the stream id).");
  const src = String(source ?? "").trim();
  if (!src) throw new Error("Name an rtsp:// or http(s):// URL, a device index or a file of the media directory.");
  if (src.length > MAX_SOURCE_LEN || /[\u0000-\u001f\u007f]/.test(src)) {
    throw new Error(`The source is at most ${MAX_SOURCE_LEN} characters, without control characters.`);
  }
  const list = [...new Set(types || [])];
  if (!list.length || list.length > MAX_TYPES) throw new Error(`Choose 1 to ${MAX_TYPES} inference types.`);
  const rate = number(fps);
  if (!(rate >= 0 && rate <= MAX_FPS)) throw new Error(`The fps is a number from 0 to ${MAX_FPS} (0: the source's own rate).`);
  const width = number(maxWidth);
  if (!Number.isInteger(width) || (width !== 0 && (width < MIN_WIDTH || width > MAX_WIDTH))) {
    throw new Error(`The max width is 0 (never downscale) or a whole number from ${MIN_WIDTH} to ${MAX_WIDTH}.`);
  }
  return { id: sid, source: src, types: list, fps: rate, max_width: width, enabled: Boolean(enabled) };
}

/** The form's fields for an existing source (to edit it: the source stays as the API shows it). */
export function fieldsOf(source) {
  return {
    id: source.id,
    source: source.source,
    types: [...(source.types || [])],
    fps: String(source.fps ?? 0),
    maxWidth: String(source.max_width ?? 0),
    enabled: source.enabled !== false,
  };
}
