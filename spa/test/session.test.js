// The session against a fetch stub answering like the gateway: /api/me at start, login,
// logout with the CSRF token, a 401 later on ending the session, authentication off.
import { afterEach, describe, expect, it, vi } from "vitest";
import { getJson, setAuthHooks, write } from "../src/api.js";
import { createSession } from "../src/auth/session.js";

const ALICE = { name: "alice", role: "operator", kind: "user", auth: true, csrf: "csrf-a" };

/** A gateway of one user: routes -> handler(options) returning [body, init]. */
function gateway(routes) {
  const calls = [];
  vi.stubGlobal("fetch", async (path, options) => {
    calls.push({ path, method: options.method, headers: options.headers, body: options.body });
    const handler = routes[`${options.method} ${path}`];
    if (!handler) return new Response('{"error": "not found"}', { status: 404 });
    const [body, init] = handler(options);
    return new Response(body === null ? null : JSON.stringify(body), init);
  });
  return calls;
}

afterEach(() => {
  setAuthHooks({ csrf: () => null, loggedOut: () => {}, refreshCsrf: null });
  vi.unstubAllGlobals();
});

describe("session start", () => {
  it("is in, with the user, when /api/me answers", async () => {
    gateway({ "GET /api/me": () => [ALICE, { status: 200 }] });
    const session = createSession();
    expect(session.state.phase).toBe("checking");
    await session.start();
    expect(session.state.phase).toBe("in");
    expect(session.state.user).toEqual({ name: "alice", role: "operator", kind: "user", auth: true });
  });

  it("is out, with nothing to say, on a 401", async () => {
    gateway({ "GET /api/me": () => [{ error: "not logged in" }, { status: 401 }] });
    const session = createSession();
    await session.start();
    expect(session.state.phase).toBe("out");
    expect(session.state.user).toBeNull();
    expect(session.state.notice).toBe("");
  });

  it("is unreachable, with why, when the server fails or cannot be reached", async () => {
    gateway({ "GET /api/me": () => [{ error: "Redis unavailable" }, { status: 503 }] });
    const session = createSession();
    await session.start();
    expect(session.state.phase).toBe("unreachable");
    expect(session.state.error).toBe("Redis unavailable");

    vi.stubGlobal("fetch", async () => {
      throw new TypeError("Failed to fetch");
    });
    await session.load();
    expect(session.state.phase).toBe("unreachable");
    expect(session.state.error).toContain("cannot be reached");
  });

  it("knows authentication is off: a user, but nobody to log out", async () => {
    gateway({ "GET /api/me": () => [{ name: "anonymous", role: "admin", kind: "anonymous", auth: false, csrf: null }, { status: 200 }] });
    const session = createSession();
    await session.start();
    expect(session.state.phase).toBe("in");
    expect(session.state.user.auth).toBe(false);
  });
});

describe("login and logout", () => {
  it("logs in, writes with the login's CSRF token, and logs out with it", async () => {
    const calls = gateway({
      "GET /api/me": () => [{ error: "not logged in" }, { status: 401 }],
      "POST /api/login": () => [ALICE, { status: 200 }],
      "DELETE /api/analysis/j1": () => [null, { status: 204 }],
      "POST /api/logout": () => [null, { status: 204 }],
    });
    const session = createSession();
    await session.start();
    await session.login("alice", "s3cret-pass");
    expect(session.state.phase).toBe("in");
    expect(session.state.user.name).toBe("alice");
    const login = calls.find((c) => c.path === "/api/login");
    expect(JSON.parse(login.body)).toEqual({ name: "alice", password: "s3cret-pass" });
    // The password was sent once and is nowhere in the session's state.
    expect(JSON.stringify(session.state)).not.toContain("s3cret-pass");

    await write("DELETE", "/api/analysis/j1");
    expect(calls.at(-1).headers["X-CSRF-Token"]).toBe("csrf-a");

    await session.logout();
    const logout = calls.at(-1);
    expect(logout.path).toBe("/api/logout");
    expect(logout.headers["X-CSRF-Token"]).toBe("csrf-a");
    expect(session.state.phase).toBe("out");
    expect(session.state.user).toBeNull();
    expect(session.state.notice).toBe("You have logged out.");

    // The token went with the session.
    await write("DELETE", "/api/analysis/j1");
    expect(calls.at(-1).headers).not.toHaveProperty("X-CSRF-Token");
  });

  it("stays out after a wrong password, and the form gets the error", async () => {
    gateway({
      "GET /api/me": () => [{ error: "not logged in" }, { status: 401 }],
      "POST /api/login": () => [{ error: "wrong user name or password" }, { status: 401 }],
    });
    const session = createSession();
    await session.start();
    await expect(session.login("alice", "nope")).rejects.toMatchObject({ status: 401 });
    expect(session.state.phase).toBe("out");
    expect(session.state.notice).toBe("");
  });

  it("counts a logout whose session had already ended as logged out", async () => {
    gateway({
      "GET /api/me": () => [ALICE, { status: 200 }],
      "POST /api/logout": () => [{ error: "not logged in" }, { status: 401 }],
    });
    const session = createSession();
    await session.start();
    await session.logout();
    expect(session.state.phase).toBe("out");
    expect(session.state.notice).toBe("You have logged out.");
  });

  it("stays logged in when the logout gets no answer, and says so", async () => {
    gateway({ "GET /api/me": () => [ALICE, { status: 200 }] });
    const session = createSession();
    await session.start();
    vi.stubGlobal("fetch", async () => {
      throw new TypeError("Failed to fetch");
    });
    await expect(session.logout()).rejects.toMatchObject({ status: 0 });
    expect(session.state.phase).toBe("in");
  });
});

describe("a session that ends on the server", () => {
  it("goes to the login page, saying why, on any call's 401", async () => {
    let expired = false;
    gateway({
      "GET /api/me": () => [ALICE, { status: 200 }],
      "GET /api/streams": () => (expired ? [{ error: "session expired" }, { status: 401 }] : [{ streams: [] }, { status: 200 }]),
    });
    const session = createSession();
    await session.start();
    await getJson("/api/streams");
    expect(session.state.phase).toBe("in");
    expired = true;
    await expect(getJson("/api/streams")).rejects.toMatchObject({ status: 401 });
    expect(session.state.phase).toBe("out");
    expect(session.state.user).toBeNull();
    expect(session.state.notice).toBe("Your session has ended. Log in again.");
  });

  it("reloads /api/me for a fresh CSRF token and retries the write", async () => {
    let me = 0;
    const calls = gateway({
      "GET /api/me": () => [{ ...ALICE, csrf: `csrf-${++me}` }, { status: 200 }],
      "DELETE /api/analysis/j1": (options) => (options.headers["X-CSRF-Token"] === "csrf-2"
        ? [null, { status: 204 }] : [{ error: "CSRF token missing or wrong" }, { status: 403 }]),
    });
    const session = createSession();
    await session.start();
    expect(await write("DELETE", "/api/analysis/j1")).toBeNull();
    expect(calls.map((c) => `${c.method} ${c.path}`)).toEqual([
      "GET /api/me", "DELETE /api/analysis/j1", "GET /api/me", "DELETE /api/analysis/j1",
    ]);
    expect(session.state.phase).toBe("in");
  });
});
