// How a stream is described on a tile and in the detail view: its registry details
// (GET /api/streams) and the figures sampled from its StreamState.
import { count, fixed, ms } from "./format.js";

/** "people, face" from the registry's declared types, else from the results seen. */
export function typesOf(stream, stats) {
  const declared = Array.isArray(stream?.types) ? stream.types : [];
  return (declared.length ? declared : stats.types).join(", ");
}

/** CSS aspect-ratio of a stream's frames, from its registry details when known. */
export function aspectOf(stream) {
  return stream?.w > 0 && stream?.h > 0 ? `${stream.w} / ${stream.h}` : "4 / 3";
}

// The figures a stream can show, by name: label, hover text and how its value is formatted.
const FIGURES = {
  fps: { label: "fps", value: (s) => fixed(s.fps) },
  paintFps: { label: "painted fps", value: (s) => fixed(s.paintFps) },
  latency: {
    label: "latency",
    title: "browser clock minus capture time",
    value: (s) => ms(s.latency),
  },
  pipeline: {
    label: "pipeline",
    title: "result done minus capture time",
    value: (s) => ms(s.pipeline),
  },
  detections: { label: "in view", value: (s) => count(s.detections) },
  drops: {
    label: "drops",
    title: "frames skipped: seq gaps plus frames this page did not paint",
    value: (s) => count(s.drops),
  },
};

/**
 * [{name, label, title, value}] of the figures `names` (keys of FIGURES), in that order, from
 * `stats` (a StreamState sample). An unknown name is a programming error: it throws.
 */
export function figures(stats, names) {
  return names.map((name) => {
    const figure = FIGURES[name];
    if (!figure) throw new Error(`unknown stream figure ${JSON.stringify(name)}`);
    return { name, label: figure.label, title: figure.title, value: figure.value(stats) };
  });
}
