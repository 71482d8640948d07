// The login form's states: busy, wrong password, rate-limited with a countdown, refused,
// server unavailable, and that the password is never part of its state.
import { describe, expect, it } from "vitest";
import { ApiError } from "../src/api.js";
import { createLoginForm, loginFailure, secondsLeft } from "../src/auth/login-form.js";

/** A session whose login resolves or rejects as the test says, recording the attempts. */
function fakeSession() {
  const attempts = [];
  let settle = null;
  return {
    attempts,
    login(name, password) {
      attempts.push({ name, password });
      return new Promise((resolve, reject) => (settle = { resolve, reject }));
    },
    answer: () => settle.resolve(),
    fail: (err) => settle.reject(err),
  };
}

describe("loginFailure", () => {
  it("says what each answer means", () => {
    expect(loginFailure(new ApiError(401, "wrong user name or password"))).toMatchObject({
      kind: "wrong", text: "Wrong user name or password.", retryAt: 0,
    });
    expect(loginFailure(new ApiError(429, "too many", 30), 1000)).toMatchObject({
      kind: "limited", retryAt: 31000, seconds: 30,
    });
    expect(loginFailure(new ApiError(400, "name is required"))).toMatchObject({
      kind: "refused", text: "name is required",
    });
    for (const err of [new ApiError(0, "the server cannot be reached (Failed to fetch)"),
      new ApiError(502, "502 Bad Gateway")]) {
      const failure = loginFailure(err);
      expect(failure.kind).toBe("unavailable");
      expect(failure.text).toContain("The server is unavailable");
      expect(failure.text).toContain(err.message);
    }
  });

  it("waits a minute on a 429 without Retry-After", () => {
    expect(loginFailure(new ApiError(429, "too many", null), 0).retryAt).toBe(60000);
  });
});

describe("secondsLeft", () => {
  it("rounds up and stops at zero", () => {
    expect(secondsLeft(10000, 0)).toBe(10);
    expect(secondsLeft(10000, 9001)).toBe(1);
    expect(secondsLeft(10000, 10000)).toBe(0);
    expect(secondsLeft(0, 5000)).toBe(0);
  });
});

describe("createLoginForm", () => {
  it("is busy while the request is out, then done, without keeping the password", async () => {
    const session = fakeSession();
    const { form, submit } = createLoginForm(session);
    form.name = "  alice ";
    const pending = submit("pw-123456");
    expect(form.busy).toBe(true);
    expect(session.attempts).toEqual([{ name: "alice", password: "pw-123456" }]);
    expect(await submit("again")).toBe(false); // a second submit while busy sends nothing
    expect(session.attempts.length).toBe(1);
    session.answer();
    expect(await pending).toBe(true);
    expect(form.busy).toBe(false);
    expect(form.error).toBeNull();
    expect(JSON.stringify(form)).not.toContain("pw-123456");
  });

  it("keeps the name and shows the error after a wrong password", async () => {
    const session = fakeSession();
    const { form, submit } = createLoginForm(session);
    form.name = "alice";
    const pending = submit("wrong");
    session.fail(new ApiError(401, "wrong user name or password"));
    expect(await pending).toBe(false);
    expect(form.name).toBe("alice");
    expect(form.error.kind).toBe("wrong");
    expect(form.busy).toBe(false);
  });

  it("refuses to send until the rate limit's wait is over", async () => {
    let now = 1000;
    const session = fakeSession();
    const { form, submit } = createLoginForm(session, () => now);
    form.name = "alice";
    const pending = submit("wrong");
    session.fail(new ApiError(429, "too many failed logins; retry in 20 s", 20));
    await pending;
    expect(form.error.kind).toBe("limited");
    expect(secondsLeft(form.error.retryAt, now)).toBe(20);
    now += 19500;
    expect(await submit("again")).toBe(false);
    expect(session.attempts.length).toBe(1);
    now += 500;
    const later = submit("right");
    expect(session.attempts.length).toBe(2);
    session.answer();
    expect(await later).toBe(true);
  });

  it("asks for both fields before sending anything", async () => {
    const session = fakeSession();
    const { form, submit } = createLoginForm(session);
    form.name = "  ";
    expect(await submit("pw")).toBe(false);
    expect(form.error.kind).toBe("missing");
    form.name = "alice";
    expect(await submit("")).toBe(false);
    expect(session.attempts).toEqual([]);
  });
});
