// REST paths and the one fetch wrapper: ids encoded, empty query values skipped, API errors
// surfaced, the CSRF token on writes, 401 as "logged out", one retry after a CSRF refusal.
import { afterEach, describe, expect, it, vi } from "vitest";
import {
  ApiError,
  getJson,
  request,
  retryAfterSeconds,
  setAuthHooks,
  streamPath,
  withQuery,
  write,
} from "../src/api.js";

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

/** fetch answering each call with the next of `answers` ([body, init]); returns the calls. */
function answers(...list) {
  const calls = [];
  vi.stubGlobal("fetch", async (path, options) => {
    calls.push({ path, options, headers: options.headers });
    const [body, init] = list[Math.min(calls.length, list.length) - 1];
    return new Response(body, init);
  });
  return calls;
}

describe("request", () => {
  let undo = () => {};
  afterEach(() => {
    undo();
    vi.unstubAllGlobals();
  });

  it("sends the CSRF token on writes only, and the body as JSON", async () => {
    undo = setAuthHooks({ csrf: () => "tok-1", loggedOut: () => {}, refreshCsrf: null });
    const calls = answers(['{"jobs": []}', { status: 200 }], ['{"id": "j1"}', { status: 201 }],
      [null, { status: 204 }]);
    await getJson("/api/analysis");
    expect(await write("POST", "/api/analysis", { source: "a.avi" })).toEqual({ id: "j1" });
    expect(await write("DELETE", "/api/analysis/j1")).toBeNull();
    expect(calls[0].headers["X-CSRF-Token"]).toBeUndefined();
    expect(calls[1].options.method).toBe("POST");
    expect(calls[1].headers["X-CSRF-Token"]).toBe("tok-1");
    expect(calls[1].headers["Content-Type"]).toBe("application/json");
    expect(JSON.parse(calls[1].options.body)).toEqual({ source: "a.avi" });
    expect(calls[2].options.method).toBe("DELETE");
    expect(calls[2].headers["X-CSRF-Token"]).toBe("tok-1");
    expect(calls[2].options.body).toBeUndefined();
  });

  it("sends no token header when there is no session", async () => {
    const calls = answers([null, { status: 204 }]);
    await write("POST", "/api/logout");
    expect(calls[0].headers).not.toHaveProperty("X-CSRF-Token");
  });

  it("turns a 401 into logged out, and throws", async () => {
    const loggedOut = vi.fn();
    undo = setAuthHooks({ csrf: () => null, loggedOut, refreshCsrf: null });
    answers(['{"error": "session expired"}', { status: 401 }]);
    const err = await getJson("/api/streams").catch((e) => e);
    expect(err).toBeInstanceOf(ApiError);
    expect(err.status).toBe(401);
    expect(loggedOut).toHaveBeenCalledWith("session expired");
  });

  it("leaves a login attempt's 401 to the caller", async () => {
    const loggedOut = vi.fn();
    undo = setAuthHooks({ csrf: () => null, loggedOut, refreshCsrf: null });
    answers(['{"error": "wrong user name or password"}', { status: 401 }]);
    await expect(request("/api/login", { method: "POST", body: {}, loginAttempt: true }))
      .rejects.toMatchObject({ status: 401, message: "wrong user name or password" });
    expect(loggedOut).not.toHaveBeenCalled();
  });

  it("reloads the CSRF token after a CSRF refusal and retries once with the new one", async () => {
    let token = "old";
    const refreshCsrf = vi.fn(async () => (token = "new"));
    undo = setAuthHooks({ csrf: () => token, loggedOut: () => {}, refreshCsrf });
    const calls = answers(['{"error": "missing or wrong CSRF token"}', { status: 403 }],
      [null, { status: 204 }]);
    expect(await write("DELETE", "/api/analysis/j1")).toBeNull();
    expect(refreshCsrf).toHaveBeenCalledTimes(1);
    expect(calls.map((c) => c.headers["X-CSRF-Token"])).toEqual(["old", "new"]);
  });

  it("retries a CSRF refusal only once", async () => {
    const refreshCsrf = vi.fn(async () => {});
    undo = setAuthHooks({ csrf: () => "t", loggedOut: () => {}, refreshCsrf });
    const calls = answers(['{"error": "CSRF token refused"}', { status: 403 }]);
    await expect(write("POST", "/api/analysis", {})).rejects.toMatchObject({ status: 403 });
    expect(calls.length).toBe(2);
    expect(refreshCsrf).toHaveBeenCalledTimes(1);
  });

  it("does not retry another 403, nor a GET", async () => {
    const refreshCsrf = vi.fn(async () => {});
    undo = setAuthHooks({ csrf: () => "t", loggedOut: () => {}, refreshCsrf });
    const calls = answers(['{"error": "operator role required"}', { status: 403 }]);
    await expect(write("DELETE", "/api/analysis/j1")).rejects.toThrow("operator role required");
    await expect(getJson("/api/analysis")).rejects.toMatchObject({ status: 403 });
    expect(calls.length).toBe(2);
    expect(refreshCsrf).not.toHaveBeenCalled();
  });

  it("carries Retry-After's seconds on a 429", async () => {
    answers(['{"error": "too many failed logins; retry in 42 s"}',
      { status: 429, headers: { "Retry-After": "42" } }]);
    await expect(request("/api/login", { method: "POST", body: {}, loginAttempt: true }))
      .rejects.toMatchObject({ status: 429, retryAfter: 42 });
  });

  it("is an ApiError with status 0 when no answer comes", async () => {
    vi.stubGlobal("fetch", async () => {
      throw new TypeError("Failed to fetch");
    });
    await expect(getJson("/api/me")).rejects.toMatchObject({
      status: 0,
      message: "the server cannot be reached (Failed to fetch)",
    });
  });
});

describe("retryAfterSeconds", () => {
  it("reads delta-seconds and HTTP dates, and nothing else", () => {
    expect(retryAfterSeconds("17")).toBe(17);
    expect(retryAfterSeconds(" 0 ")).toBe(0);
    const now = Date.parse("2026-12-02T10:00:00Z");
    expect(retryAfterSeconds("Wed, 02 Dec 2026 10:00:30 GMT", now)).toBe(30);
    expect(retryAfterSeconds("Wed, 02 Dec 2026 09:00:00 GMT", now)).toBe(0);
    expect(retryAfterSeconds(null)).toBeNull();
    expect(retryAfterSeconds("soon")).toBeNull();
  });
});
