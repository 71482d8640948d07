// The jobs view's module: paths, the list page, the request from the form, the progress.
import { afterEach, describe, expect, it, vi } from "vitest";
import { setAuthHooks } from "../src/api.js";
import { deleteJob, jobPath, jobProgress, jobRequest, listJobs, submitJob } from "../src/analysis-jobs.js";

const job = (extra) => ({ id: "j0123456789ab", status: "processing", frames_total: 160, frames_read: 160,
  frames_done: 40, ...extra });

describe("jobProgress", () => {
  it("is the share of kept frames every type has done", () => {
    expect(jobProgress(job())).toEqual({ percent: 25, text: "40 of 160 frames" });
    expect(jobProgress(job({ frames_done: 159 })).percent).toBe(99); // never 100 before done
  });

  it("has no percentage while the video is still being read", () => {
    expect(jobProgress(job({ status: "extracting", frames_total: null, frames_read: 70, frames_done: 12 })))
      .toEqual({ percent: null, text: "12 of 70+ frames" });
    expect(jobProgress(job({ status: "queued", frames_total: null, frames_read: 0, frames_done: 0 })))
      .toEqual({ percent: null, text: "waiting for a runner" });
  });

  it("is full when done, and for a video that kept no frame", () => {
    expect(jobProgress(job({ status: "done", frames_done: 160 }))).toEqual({ percent: 100, text: "160 frames" });
    expect(jobProgress(job({ frames_total: 0, frames_done: 0 })).percent).toBe(100);
  });
});

describe("jobRequest", () => {
  it("builds the API's body from the form's text fields", () => {
    expect(jobRequest({ source: " vtest.avi ", types: "people, face,people", frameStep: "5", name: " lobby " }))
      .toEqual({ source: "vtest.avi", types: ["people", "face"], frame_step: 5, name: "lobby" });
  });

  it("names the field that is wrong", () => {
    const ok = { source: "a.avi", types: "people", frameStep: 1, name: "" };
    expect(() => jobRequest({ ...ok, source: " " })).toThrow("media directory");
    expect(() => jobRequest({ ...ok, types: " , " })).toThrow("inference type");
    for (const frameStep of ["0", "1.5", "", "x"]) {
      expect(() => jobRequest({ ...ok, frameStep })).toThrow("frame step");
    }
  });
});

describe("the jobs API", () => {
  afterEach(() => {
    setAuthHooks({ csrf: () => null, loggedOut: () => {}, refreshCsrf: null });
    vi.unstubAllGlobals();
  });

  it("lists a page, deletes and submits with the CSRF token", async () => {
    setAuthHooks({ csrf: () => "c1", loggedOut: () => {}, refreshCsrf: null });
    const calls = [];
    vi.stubGlobal("fetch", async (path, options) => {
      calls.push({ path, method: options.method, headers: options.headers, body: options.body });
      if (options.method === "DELETE") return new Response(null, { status: 204 });
      if (options.method === "POST") return new Response('{"id": "j1"}', { status: 201 });
      return new Response('{"jobs": [{"id": "j1"}]}', { status: 200 });
    });
    expect(await listJobs(40)).toEqual([{ id: "j1" }]);
    expect(calls[0].path).toBe("/api/analysis?limit=20&offset=40");
    await deleteJob("j1/x");
    expect(calls[1]).toMatchObject({ path: "/api/analysis/j1%2Fx", method: "DELETE" });
    expect(calls[1].headers["X-CSRF-Token"]).toBe("c1");
    expect(await submitJob({ source: "vtest.avi", types: "people", frameStep: "10", name: "" }))
      .toEqual({ id: "j1" });
    expect(calls[2].headers["X-CSRF-Token"]).toBe("c1");
    expect(JSON.parse(calls[2].body)).toEqual({ source: "vtest.avi", types: ["people"], frame_step: 10, name: "" });
    expect(jobPath("j1")).toBe("/api/analysis/j1");
  });
});
