// A stream's display figures, sampled from its StreamState once a second.
import { inject } from "vue";
import { useSampled } from "./composables.js";
import { FEED } from "./keys.js";

export function useStreamStats(streamId, intervalMs = 1000) {
  const feed = inject(FEED);
  // Looked up each time: a stream that went away and came back has a new state.
  return useSampled(() => feed.state(streamId).sample(performance.now()), intervalMs);
}

/** "people, face" from the registry's declared types, else from the results seen. */
export function typesOf(stream, stats) {
  const declared = Array.isArray(stream?.types) ? stream.types : [];
  return (declared.length ? declared : stats.types).join(", ");
}

/** CSS aspect-ratio of a stream's frames, from its registry details when known. */
export function aspectOf(stream) {
  return stream?.w > 0 && stream?.h > 0 ? `${stream.w} / ${stream.h}` : "4 / 3";
}
