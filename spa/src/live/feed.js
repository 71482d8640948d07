// The one websocket of the page: connects (URL from /api/config), subscribes, decodes frame
// messages (a JPEG and its first result) and result texts (the other types' results, no JPEG)
// and hands each to the listeners of its stream; reconnects by itself with
// exponential backoff. Components read `status` (reactive); frames bypass Vue entirely.
// The socket is authenticated by the session cookie: App.vue starts the feed after login and
// stops it (closing the socket) at logout or when the session ends.
import { reactive } from "vue";
import { getJson } from "../api.js";
import { decodeFrame, websocketUrl } from "./protocol.js";
import { StreamState } from "./stream-state.js";

const BACKOFF_MIN_MS = 500;
const BACKOFF_MAX_MS = 10000;

export class LiveFeed {
  constructor({ onStreams }) {
    this.onStreams = onStreams; // (ids) => void, for {"streams": [...]} messages
    this.status = reactive({ state: "connecting", retryAt: 0, attempts: 0, error: "" });
    this.states = new Map(); // stream id -> StreamState
    this.listeners = new Map(); // stream id -> Set of (message) => void
    this.subscription = "*";
    this.url = null;
    this.ws = null;
    this.timer = 0;
    this.stopped = true;
    this.epoch = 0; // bumped by stop(): a connect() begun before it opens nothing
  }

  start() {
    if (!this.stopped) return;
    this.stopped = false;
    this.status.attempts = 0;
    this.connect();
  }

  stop() {
    this.stopped = true;
    this.epoch += 1;
    clearTimeout(this.timer);
    if (this.ws) this.ws.close(1000);
    this.ws = null;
    this.status.state = "closed";
  }

  /** Receive frames of `ids` only (an array), or of every stream ("*"). */
  subscribe(ids) {
    this.subscription = ids;
    this.send({ subscribe: ids });
  }

  /** Call `fn` with every message of `stream`; returns the function that stops it. */
  listen(stream, fn) {
    let set = this.listeners.get(stream);
    if (!set) this.listeners.set(stream, (set = new Set()));
    set.add(fn);
    return () => {
      set.delete(fn);
      if (!set.size) this.listeners.delete(stream);
    };
  }

  state(stream) {
    let state = this.states.get(stream);
    if (!state) this.states.set(stream, (state = new StreamState(stream)));
    return state;
  }

  /** Forget streams no longer live, so a stream that comes back starts afresh. */
  retain(ids) {
    const live = new Set(ids);
    for (const id of this.states.keys()) if (!live.has(id)) this.states.delete(id);
  }

  /** Skip the wait after a lost connection (the banner's "Retry now"). */
  retryNow() {
    if (this.status.state === "lost") {
      clearTimeout(this.timer);
      this.connect();
    }
  }

  send(message) {
    if (this.ws && this.ws.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify(message));
  }

  async connect() {
    if (this.stopped) return;
    const epoch = this.epoch;
    this.status.state = this.status.attempts ? "reconnecting" : "connecting";
    try {
      // Asked once: the deployment's websocket URL does not change under a page.
      if (this.url === null) {
        const config = await getJson("/api/config");
        this.url = websocketUrl(config.websocket_url, window.location);
      }
      if (epoch === this.epoch) this.open(new WebSocket(this.url));
    } catch (err) {
      if (epoch === this.epoch) this.lost(err.message);
    }
  }

  open(ws) {
    this.ws = ws;
    ws.binaryType = "arraybuffer";
    ws.onopen = () => {
      this.status.state = "open";
      this.status.attempts = 0;
      this.status.error = "";
      if (this.subscription !== "*") this.send({ subscribe: this.subscription });
    };
    ws.onmessage = (event) => this.receive(event.data);
    ws.onclose = (event) => {
      if (this.ws !== ws) return;
      this.ws = null;
      this.lost(event.reason || `closed with code ${event.code}`);
    };
  }

  lost(why) {
    if (this.stopped) return;
    this.status.attempts += 1;
    // Exponential backoff with jitter, so a restarted server is not hit by every page at once.
    const base = Math.min(BACKOFF_MAX_MS, BACKOFF_MIN_MS * 2 ** (this.status.attempts - 1));
    const delay = base / 2 + Math.random() * (base / 2);
    this.status.state = "lost";
    this.status.error = why;
    this.status.retryAt = Date.now() + delay;
    this.timer = setTimeout(() => this.connect(), delay);
  }

  /** A tracks message: kept with its stream, and the stream's canvases repaint their boxes. */
  receiveTracks(tracks, arrivedAt) {
    if (typeof tracks?.stream !== "string") return;
    const state = this.state(tracks.stream);
    if (!state.tracks.accept(tracks)) return;
    const listeners = this.listeners.get(tracks.stream);
    if (listeners) for (const fn of listeners) fn({ kind: "tracks", result: null, jpeg: null, arrivedAt, state });
  }

  /**
   * A result for `stream`, with its frame's JPEG (a binary message) or without (`jpeg` null: a
   * text message, the frame came with another type's result or is not coming): kept with its
   * stream, and the stream's canvases decode the JPEG of a new frame or repaint their boxes.
   */
  receiveResult(stream, result, jpeg, arrivedAt) {
    if (typeof stream !== "string" || typeof result !== "object" || result === null) return;
    const state = this.state(stream);
    const kind = state.accept(result, Date.now() / 1000, jpeg !== null);
    const listeners = this.listeners.get(stream);
    if (listeners) for (const fn of listeners) fn({ kind, result, jpeg, arrivedAt, state });
  }

  receive(data) {
    const arrivedAt = performance.now();
    if (typeof data === "string") {
      const message = JSON.parse(data);
      if (Array.isArray(message.streams)) this.onStreams(message.streams);
      else if (message.result) this.receiveResult(message.stream, message.result, null, arrivedAt);
      else if (message.tracks) this.receiveTracks(message.tracks, arrivedAt);
      else if (message.error) console.warn("websocket server:", message.error);
      return;
    }
    const { header, jpeg } = decodeFrame(data);
    this.receiveResult(header.stream, header.result, jpeg, arrivedAt);
  }
}
