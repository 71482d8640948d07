// The live feed at login and logout: it opens its socket only once started, and stop()
// closes it and forgets a connect still waiting for /api/config, so a logged-out page holds
// no socket and does not reconnect.
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { LiveFeed } from "../src/live/feed.js";
import { createStreams } from "../src/streams.js";

class FakeSocket {
  static OPEN = 1;
  static made = [];
  constructor(url) {
    this.url = url;
    this.readyState = 0;
    this.closed = null;
    FakeSocket.made.push(this);
  }
  close(code) {
    this.closed = code;
    this.readyState = 3;
    // The browser reports the close later, as an event.
    queueMicrotask(() => this.onclose?.({ code, reason: "" }));
  }
}

/** fetch of /api/config that answers when `release()` is called. */
function slowConfig() {
  let release;
  const gate = new Promise((resolve) => (release = resolve));
  vi.stubGlobal("fetch", async () => {
    await gate;
    return new Response('{"websocket_url": null}', { status: 200 });
  });
  return () => release();
}

const settle = () => new Promise((resolve) => setTimeout(resolve, 0));

beforeEach(() => {
  FakeSocket.made = [];
  vi.stubGlobal("WebSocket", FakeSocket);
  vi.stubGlobal("window", { location: new URL("http://127.0.0.1:8080/") });
});
afterEach(() => vi.unstubAllGlobals());

describe("LiveFeed start and stop", () => {
  it("opens nothing until started, then the page's /ws", async () => {
    const release = slowConfig();
    const feed = new LiveFeed({ onStreams: () => {} });
    await settle();
    expect(FakeSocket.made).toEqual([]);
    feed.start();
    release();
    await settle();
    expect(FakeSocket.made.map((s) => s.url)).toEqual(["ws://127.0.0.1:8080/ws"]);
    feed.stop();
  });

  it("closes the socket at stop and does not reconnect", async () => {
    vi.useFakeTimers();
    try {
      vi.stubGlobal("fetch", async () => new Response('{"websocket_url": null}', { status: 200 }));
      const feed = new LiveFeed({ onStreams: () => {} });
      feed.start();
      await vi.advanceTimersByTimeAsync(0);
      const [ws] = FakeSocket.made;
      feed.stop();
      expect(ws.closed).toBe(1000);
      await vi.advanceTimersByTimeAsync(60000); // longer than any backoff
      expect(FakeSocket.made.length).toBe(1);
      expect(feed.status.state).toBe("closed");
    } finally {
      vi.useRealTimers();
    }
  });

  it("opens no socket for a connect begun before stop", async () => {
    const release = slowConfig();
    const feed = new LiveFeed({ onStreams: () => {} });
    feed.start();
    feed.stop(); // logged out while /api/config was on its way
    release();
    await settle();
    expect(FakeSocket.made).toEqual([]);
  });

  it("connects afresh after a stop and a start (log out, log in)", async () => {
    vi.stubGlobal("fetch", async () => new Response('{"websocket_url": null}', { status: 200 }));
    const feed = new LiveFeed({ onStreams: () => {} });
    feed.start();
    await settle();
    feed.stop();
    feed.start();
    await settle();
    expect(FakeSocket.made.length).toBe(2);
    expect(FakeSocket.made[0].closed).toBe(1000);
    expect(FakeSocket.made[1].closed).toBeNull();
    expect(feed.ws).toBe(FakeSocket.made[1]);
    feed.stop();
  });
});

describe("the stream list at logout", () => {
  it("forgets the streams and ignores a poll still in flight", async () => {
    let release;
    let calls = 0;
    vi.stubGlobal("fetch", async () => {
      calls += 1;
      if (calls > 1) await new Promise((resolve) => (release = resolve));
      return new Response('{"streams": [{"id": "cam"}]}', { status: 200 });
    });
    vi.useFakeTimers();
    try {
      const list = createStreams();
      list.start(null);
      await vi.advanceTimersByTimeAsync(0);
      expect(list.streams.value.map((s) => s.id)).toEqual(["cam"]);
      await vi.advanceTimersByTimeAsync(2000); // the next poll starts and waits
      expect(calls).toBe(2);
      list.stop();
      expect(list.streams.value).toEqual([]);
      release();
      await vi.advanceTimersByTimeAsync(10000);
      expect(list.streams.value).toEqual([]);
      expect(calls).toBe(2); // no poll after stop
    } finally {
      vi.useRealTimers();
    }
  });
});
