// A stream's display figures (fps, latency, drops...) for a tile or the detail view, sampled
// from its StreamState once a second: the one place components read the live counters.
import { inject } from "vue";
import { FEED } from "../keys.js";
import { useSampled } from "./useSampled.js";

export function useStreamStats(streamId, intervalMs = 1000) {
  const feed = inject(FEED);
  // Looked up each time: a stream that went away and came back has a new state.
  return useSampled(() => feed.state(streamId).sample(performance.now()), intervalMs);
}
