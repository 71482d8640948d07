// The arithmetic of the detections-per-label chart (components/CountsChart.vue): scales, SVG
// paths, ticks and the text description, from a GET /api/streams/{id}/counts answer. Plain
// functions, apart from the component, so they are unit-tested without a browser.
import { labelColour } from "./colours.js";
import { clock } from "./format.js";

/** The y axis's top: the first of 1, 2, 5 x 10^k at or above `value`, and at least 5. */
export function niceMax(value) {
  if (value <= 5) return 5;
  const magnitude = 10 ** Math.floor(Math.log10(value));
  return [1, 2, 5, 10].map((m) => m * magnitude).find((m) => m >= value);
}

/** Seconds between the time axis's ticks over a range of `minutes`. */
export function tickEvery(minutes) {
  return (minutes <= 5 ? 1 : minutes <= 15 ? 5 : 15) * 60;
}

/**
 * One series' SVG path: `points` are [t, n] buckets of `step` seconds, drawn at their middle
 * through the scales `x` and `y`.
 */
export function seriesPath(points, x, y, step) {
  // Buckets without results are absent from a series: break the line there, don't bridge.
  const gap = 1.5 * step;
  return points.map(([t, n], i) => {
    const move = i === 0 || t - points[i - 1][0] > gap;
    // A point alone is drawn as a dot (round cap on a tiny segment).
    const alone = move && (i === points.length - 1 || points[i + 1][0] - t > gap);
    const px = x(t + step / 2).toFixed(1);
    return `${move ? "M" : "L"}${px},${y(n).toFixed(1)}${alone ? " h0.1" : ""}`;
  }).join(" ");
}

/**
 * What the SVG draws for `body` ({since, until, step, series: {label: [[t, n], ...]}}) in a
 * `width` x `height` box less `pad`, over a range of `minutes`; null before the first answer.
 */
export function layoutCounts(body, { width, height, pad, minutes }) {
  if (!body) return null;
  const series = Object.entries(body.series || {}).sort(([a], [b]) => (a < b ? -1 : 1));
  const points = series.reduce((n, [, s]) => n + s.length, 0);
  const top = niceMax(Math.max(0, ...series.flatMap(([, s]) => s.map(([, n]) => n))));
  const x0 = pad.left;
  const x1 = width - pad.right;
  const y0 = height - pad.bottom;
  const y1 = pad.top;
  const span = Math.max(1e-9, body.until - body.since);
  const x = (t) => x0 + ((t - body.since) / span) * (x1 - x0);
  const y = (n) => y0 - (n / top) * (y0 - y1);
  const lines = series.map(([label, s]) => ({
    label,
    colour: labelColour(label),
    path: seriesPath(s, x, y, body.step),
    last: s.length ? s[s.length - 1][1] : 0,
    peak: Math.max(0, ...s.map(([, n]) => n)),
  }));
  const yTicks = [0, top / 2, top].map((n) => ({ n, y: y(n) }));
  const every = tickEvery(minutes);
  const xTicks = [];
  for (let t = Math.ceil(body.since / every) * every; t <= body.until; t += every) {
    xTicks.push({ t, x: x(t), text: clock(t) });
  }
  return { lines, points, top, x0, x1, y0, y1, yTicks, xTicks };
}

/** The chart's text description (its SVG <desc>), for screen readers. */
export function describeCounts(chart, minutes, step) {
  if (!chart || !chart.lines.length) return `No detections in the last ${minutes} minutes.`;
  const parts = chart.lines.map((l) => `${l.label}: now ${l.last}, peak ${l.peak}`);
  return `Most detections per label in one frame, every ${step} s over the last ` +
    `${minutes} minutes. ${parts.join("; ")}.`;
}
