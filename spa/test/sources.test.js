// The sources view's module: the form's checks against the gateway's limits, the body it
// sends, each source's state however the API spells it, the types offered, and the calls.
import { afterEach, describe, expect, it, vi } from "vitest";
import { setAuthHooks } from "../src/api.js";
import {
  BUILTIN_TYPES,
  createSource,
  deleteSource,
  fieldsOf,
  listSources,
  replaceSource,
  sourcePath,
  sourceRequest,
  stateOf,
  typeChoices,
} from "../src/sources.js";

const ok = { id: "gate-1", source: "vtest.avi", types: ["people"], fps: "2", maxWidth: "320", enabled: true };

describe("sourceRequest", () => {
  it("builds the API's body from the form's fields", () => {
    expect(sourceRequest({ ...ok, id: " gate-1 ", source: " rtsp://cam/s1 ", types: ["people", "car", "people"] }))
      .toEqual({ id: "gate-1", source: "rtsp://cam/s1", types: ["people", "car"], fps: 2, max_width: 320, enabled: true });
    expect(sourceRequest({ ...ok, fps: "0", maxWidth: "0", enabled: false }))
      .toMatchObject({ fps: 0, max_width: 0, enabled: false });
    expect(sourceRequest({ ...ok, fps: 12.5, maxWidth: 3840 })).toMatchObject({ fps: 12.5, max_width: 3840 });
  });

  it("takes the ids the gateway takes and refuses the others", () => {
    for (const id of ["a", "A.b_c-9", "x".repeat(64)]) expect(sourceRequest({ ...ok, id }).id).toBe(id);
    for (const id of ["", " ", "a b", "a/b", "caf\u00e9", "x".repeat(65), "a\nb"]) {
      expect(() => sourceRequest({ ...ok, id })).toThrow("The id is 1 to 64");
    }
  });

  it("names the source, the types, the fps and the width when they are wrong", () => {
    expect(() => sourceRequest({ ...ok, source: "  " })).toThrow("media directory");
    expect(() => sourceRequest({ ...ok, source: "a\u0007b" })).toThrow("control characters");
    expect(() => sourceRequest({ ...ok, source: "x".repeat(2049) })).toThrow("at most 2048");
    expect(() => sourceRequest({ ...ok, types: [] })).toThrow("1 to 8 inference types");
    expect(() => sourceRequest({ ...ok, types: "abcdefghi".split("") })).toThrow("1 to 8 inference types");
    for (const fps of ["-1", "60.5", "61", "", "x"]) expect(() => sourceRequest({ ...ok, fps })).toThrow("fps");
    expect(sourceRequest({ ...ok, fps: "60" }).fps).toBe(60);
    for (const maxWidth of ["63", "1", "3841", "320.5", "", "-64"]) {
      expect(() => sourceRequest({ ...ok, maxWidth })).toThrow("max width");
    }
    for (const maxWidth of ["0", "64", "3840"]) expect(sourceRequest({ ...ok, maxWidth }).max_width).toBe(Number(maxWidth));
  });
});

describe("stateOf", () => {
  it("reads the pool's report as an object", () => {
    const s = { id: "a", state: { state: "live", replica: "pool-1", reconnects: 2, fps: 9.5 } };
    expect(stateOf(s)).toEqual({ state: "live", known: true, replica: "pool-1", reconnects: 2, fps: 9.5 });
  });

  it("reads it as a name with the fields beside it", () => {
    expect(stateOf({ id: "a", state: "retrying", replica: "r2", reconnects: 4 }))
      .toEqual({ state: "retrying", known: true, replica: "r2", reconnects: 4, fps: null });
  });

  it("says unknown, with no badge colour, for a state it does not know or none", () => {
    expect(stateOf({ id: "a", state: "exploded" })).toMatchObject({ state: "exploded", known: false });
    expect(stateOf({ id: "a" })).toEqual({ state: "unknown", known: false, replica: null, reconnects: null, fps: null });
    expect(stateOf({ id: "a", state: { replica: 7 } })).toMatchObject({ state: "unknown", replica: null });
  });
});

describe("typeChoices", () => {
  it("offers the built-in types, the reported ones and those in use, sorted, once each", () => {
    expect(typeChoices(null)).toEqual([...BUILTIN_TYPES].sort());
    const status = { types: [{ type: "plates" }, { type: "people" }, { nope: 1 }] };
    expect(typeChoices(status, [{ types: ["helmet", "car"] }], ["zz"]))
      .toEqual(["car", "face", "helmet", "object", "people", "plates", "zz"]);
  });
});

describe("fieldsOf", () => {
  it("gives the form a source's fields, which make the same body again", () => {
    const source = { id: "g", source: "rtsp://***@cam/s", kind: "url", types: ["car"], fps: 5, max_width: 0,
      enabled: false, state: { state: "disabled" } };
    expect(sourceRequest(fieldsOf(source)))
      .toEqual({ id: "g", source: "rtsp://***@cam/s", types: ["car"], fps: 5, max_width: 0, enabled: false });
  });
});

describe("the sources API", () => {
  afterEach(() => {
    setAuthHooks({ csrf: () => null, loggedOut: () => {}, refreshCsrf: null });
    vi.unstubAllGlobals();
  });

  it("lists sorted by id, adds, replaces and deletes with the CSRF token", async () => {
    setAuthHooks({ csrf: () => "c1", loggedOut: () => {}, refreshCsrf: null });
    const calls = [];
    vi.stubGlobal("fetch", async (path, options) => {
      calls.push({ path, method: options.method, headers: options.headers, body: options.body });
      if (options.method === "DELETE") return new Response(null, { status: 204 });
      if (options.method === "GET") return new Response('{"sources": [{"id": "b"}, {"id": "a"}]}', { status: 200 });
      return new Response(options.body, { status: options.method === "POST" ? 201 : 200 });
    });
    expect(await listSources()).toEqual([{ id: "a" }, { id: "b" }]);
    expect(calls[0].path).toBe("/api/sources");
    const body = sourceRequest(ok);
    expect(await createSource(body)).toEqual(body);
    expect(calls[1]).toMatchObject({ path: "/api/sources", method: "POST" });
    expect(await replaceSource({ ...body, id: "a/b" })).toMatchObject({ id: "a/b" });
    expect(calls[2]).toMatchObject({ path: "/api/sources/a%2Fb", method: "PUT" });
    await deleteSource("gate-1");
    expect(calls[3]).toMatchObject({ path: "/api/sources/gate-1", method: "DELETE" });
    for (const call of calls.slice(1)) expect(call.headers["X-CSRF-Token"]).toBe("c1");
    expect(sourcePath("x y")).toBe("/api/sources/x%20y");
  });

  it("throws the gateway's 400 message as it is", async () => {
    vi.stubGlobal("fetch", async () => new Response(
      '{"error": "source \'nope.avi\' is not a file of the media directory"}', { status: 400 }));
    await expect(createSource(sourceRequest(ok))).rejects.toThrow("source 'nope.avi' is not a file of the media directory");
  });
});
