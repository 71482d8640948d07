// REST paths and the JSON fetch: ids encoded, empty query values skipped, API errors surfaced.
import { afterEach, describe, expect, it, vi } from "vitest";
import { getJson, streamPath, withQuery } from "../src/api.js";

describe("streamPath", () => {
  it("builds the stream's API path", () => {
    expect(streamPath("vtest-people")).toBe("/api/streams/vtest-people");
    expect(streamPath("vtest-people", "/mjpeg")).toBe("/api/streams/vtest-people/mjpeg");
  });

  it("encodes an id that would change the path", () => {
    expect(streamPath("a/../b c?x#y", "/counts")).toBe("/api/streams/a%2F..%2Fb%20c%3Fx%23y/counts");
  });
});

describe("withQuery", () => {
  it("appends the parameters, encoded", () => {
    expect(withQuery("/api/x", { since: 10, label: "a&b=c", flag: true })).toBe(
      "/api/x?since=10&label=a%26b%3Dc&flag=true",
    );
  });

  it("skips null and undefined but keeps zero and the empty string", () => {
    expect(withQuery("/api/x", { a: null, b: undefined, c: 0, d: "" })).toBe("/api/x?c=0&d=");
  });

  it("leaves the path alone when nothing is left", () => {
    expect(withQuery("/api/x", {})).toBe("/api/x");
    expect(withQuery("/api/x", { a: null })).toBe("/api/x");
  });
});

describe("getJson", () => {
  afterEach(() => vi.unstubAllGlobals());

  function answer(body, init) {
    const calls = [];
    vi.stubGlobal("fetch", async (path, options) => {
      calls.push({ path, options });
      return new Response(body, init);
    });
    return calls;
  }

  it("returns the parsed body and never uses the HTTP cache", async () => {
    const calls = answer('{"streams": []}', { status: 200 });
    expect(await getJson("/api/streams")).toEqual({ streams: [] });
    expect(calls[0].path).toBe("/api/streams");
    expect(calls[0].options.cache).toBe("no-store");
  });

  it("throws the API's own error message", async () => {
    answer('{"error": "unknown stream"}', { status: 404, statusText: "Not Found" });
    await expect(getJson("/api/streams/x")).rejects.toThrow("unknown stream");
  });

  it("throws the status line when the error page is not JSON", async () => {
    answer("<html>bad gateway</html>", { status: 502, statusText: "Bad Gateway" });
    await expect(getJson("/api/status")).rejects.toThrow("502 Bad Gateway");
  });
});
