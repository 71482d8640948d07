// Hash routes: `#/` the wall, `#/streams/ID` a stream's detail, `#/analysis` the jobs,
// `#/sources` the sources; anything else is the wall.
import { describe, expect, it } from "vitest";
import { ANALYSIS_HREF, SOURCES_HREF, parseHash, streamHref } from "../src/route.js";

const WALL = { name: "wall", stream: null };

describe("parseHash", () => {
  it("reads a stream's detail route, with or without a trailing slash", () => {
    expect(parseHash("#/streams/vtest-people")).toEqual({ name: "detail", stream: "vtest-people" });
    expect(parseHash("#/streams/vtest-people/")).toEqual({ name: "detail", stream: "vtest-people" });
  });

  it("decodes the id", () => {
    expect(parseHash("#/streams/a%2Fb%20c").stream).toBe("a/b c");
    expect(parseHash("#/streams/caf%C3%A9").stream).toBe("caf\u00e9");
  });

  it("is the wall for the empty hash, #/ and unknown routes", () => {
    for (const hash of ["", "#", "#/", "#/streams", "#/streams/", "#/other/x", "#streams/a"]) {
      expect(parseHash(hash)).toEqual(WALL);
    }
  });

  it("is the wall for a deeper path or a query after the id", () => {
    expect(parseHash("#/streams/a/b")).toEqual(WALL);
    expect(parseHash("#/streams/a?x=1")).toEqual(WALL);
    expect(parseHash("#/streams/a//")).toEqual(WALL);
  });

  it("is the wall for malformed percent-encoding, instead of throwing", () => {
    expect(parseHash("#/streams/%E0%A4%A")).toEqual(WALL);
    expect(parseHash("#/streams/%")).toEqual(WALL);
  });
});

describe("the analysis route", () => {
  it("is #/analysis, with or without a trailing slash", () => {
    expect(parseHash(ANALYSIS_HREF)).toEqual({ name: "analysis", stream: null });
    expect(parseHash("#/analysis/")).toEqual({ name: "analysis", stream: null });
  });

  it("is the wall for anything below or beside it", () => {
    for (const hash of ["#/analysis/j1", "#/analysisx", "#analysis", "#/analysis?x=1"]) {
      expect(parseHash(hash)).toEqual(WALL);
    }
  });
});

describe("the sources route", () => {
  it("is #/sources, with or without a trailing slash", () => {
    expect(parseHash(SOURCES_HREF)).toEqual({ name: "sources", stream: null });
    expect(parseHash("#/sources/")).toEqual({ name: "sources", stream: null });
  });

  it("is the wall for anything below or beside it", () => {
    for (const hash of ["#/sources/gate-1", "#/sourcesx", "#sources", "#/sources?x=1"]) {
      expect(parseHash(hash)).toEqual(WALL);
    }
  });
});

describe("streamHref", () => {
  it("links to the stream's detail route", () => {
    expect(streamHref("vtest-car")).toBe("#/streams/vtest-car");
  });

  it.each(["a/b", "x?y#z", "50% off", "caf\u00e9", "..", " "])(
    "round-trips the id %j through parseHash",
    (id) => {
      expect(parseHash(streamHref(id))).toEqual({ name: "detail", stream: id });
    },
  );
});
