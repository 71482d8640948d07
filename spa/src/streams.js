// The live stream list: /api/streams every 2 s (with each stream's details) and, between
// polls, the websocket's {"streams": [...]} messages, so tiles come and go within a second.
import { shallowRef } from "vue";
import { getJson } from "./api.js";

const POLL_MS = 2000;

export function createStreams() {
  const streams = shallowRef([]); // [{id, types, fps, ...}] sorted by id
  const error = shallowRef("");
  let timer = 0;
  let feed = null;
  let generation = 0; // only the newest poll's answer counts

  function set(list) {
    streams.value = [...list].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
    feed?.retain(streams.value.map((s) => s.id));
  }

  async function poll() {
    clearTimeout(timer);
    const mine = ++generation;
    try {
      const body = await getJson("/api/streams");
      if (mine !== generation) return;
      set(body.streams);
      error.value = "";
    } catch (err) {
      if (mine !== generation) return;
      error.value = err.message;
    }
    timer = setTimeout(poll, POLL_MS);
  }

  /** From the websocket: ids only. Known streams keep their details; new ones are fetched. */
  function ids(list) {
    const known = new Map(streams.value.map((s) => [s.id, s]));
    set(list.map((id) => known.get(id) || { id }));
    if (list.some((id) => !known.has(id))) poll();
  }

  return {
    streams,
    error,
    ids,
    start(liveFeed) {
      feed = liveFeed;
      poll();
    },
    /** At logout: no more polls (one in flight is ignored) and nothing of the last user's. */
    stop() {
      clearTimeout(timer);
      generation += 1;
      streams.value = [];
      error.value = "";
    },
  };
}
