// Number formatting shared by the panels; a missing value is an en dash, never "NaN".
const DASH = "\u2013";

function isNum(value) {
  return typeof value === "number" && Number.isFinite(value);
}

export function fixed(value, digits = 1) {
  return isNum(value) ? value.toFixed(digits) : DASH;
}

export function ms(seconds) {
  return isNum(seconds) ? `${Math.round(seconds * 1000)} ms` : DASH;
}

export function count(value) {
  return isNum(value) ? String(Math.round(value)) : DASH;
}

export function list(values) {
  return Array.isArray(values) && values.length ? values.join(", ") : DASH;
}

export function clock(epochSeconds) {
  return new Date(epochSeconds * 1000).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
}

/** An epoch time as the clock when it is today (at `now`), else with its date too. */
export function when(epochSeconds, now = Date.now()) {
  const date = new Date(epochSeconds * 1000);
  if (date.toDateString() === new Date(now).toDateString()) return clock(epochSeconds);
  return date.toLocaleString([], { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit" });
}
