// What each role sees: analysis jobs and changes to sources for operators and admins only; everyone is admin when
// the server runs without authentication; an unknown role sees the least.
import { describe, expect, it } from "vitest";
import { allows, canManageJobs, canManageSources, effectiveRole, visibleRoute } from "../src/auth/roles.js";

const user = (role, auth = true) => ({ name: "u", role, kind: "user", auth });
const ANALYSIS = { name: "analysis", stream: null };
const WALL = { name: "wall", stream: null };

describe("allows", () => {
  it("orders viewer < operator < admin", () => {
    expect(allows("viewer", "viewer")).toBe(true);
    expect(allows("viewer", "operator")).toBe(false);
    expect(allows("operator", "viewer")).toBe(true);
    expect(allows("operator", "admin")).toBe(false);
    expect(allows("admin", "operator")).toBe(true);
  });

  it("gives an unknown or missing role nothing", () => {
    expect(allows("root", "viewer")).toBe(false);
    expect(allows(undefined, "viewer")).toBe(false);
    expect(allows(null, "viewer")).toBe(false);
  });
});

describe("canManageJobs", () => {
  it("is for operators and admins", () => {
    expect(canManageJobs(user("viewer"))).toBe(false);
    expect(canManageJobs(user("operator"))).toBe(true);
    expect(canManageJobs(user("admin"))).toBe(true);
    expect(canManageJobs(null)).toBe(false);
  });

  it("is for everyone when authentication is off", () => {
    expect(effectiveRole(user("viewer", false))).toBe("admin");
    expect(canManageJobs(user("viewer", false))).toBe(true);
  });
});

describe("canManageSources", () => {
  it("is for operators and admins, and everyone when authentication is off", () => {
    expect(canManageSources(user("viewer"))).toBe(false);
    expect(canManageSources(user("operator"))).toBe(true);
    expect(canManageSources(user("admin"))).toBe(true);
    expect(canManageSources(user("root"))).toBe(false);
    expect(canManageSources(null)).toBe(false);
    expect(canManageSources(user("viewer", false))).toBe(true);
  });
});

describe("visibleRoute", () => {
  it("shows the jobs view to an operator and the wall instead to a viewer", () => {
    expect(visibleRoute(ANALYSIS, user("operator"))).toEqual(ANALYSIS);
    expect(visibleRoute(ANALYSIS, user("admin"))).toEqual(ANALYSIS);
    expect(visibleRoute(ANALYSIS, user("viewer"))).toEqual(WALL);
    expect(visibleRoute(ANALYSIS, null)).toEqual(WALL);
  });

  it("leaves the wall, a stream's detail and the sources to every role", () => {
    const detail = { name: "detail", stream: "cam" };
    const sources = { name: "sources", stream: null };
    for (const role of ["viewer", "operator", "admin"]) {
      expect(visibleRoute(sources, user(role))).toEqual(sources);
      expect(visibleRoute(detail, user(role))).toEqual(detail);
      expect(visibleRoute(WALL, user(role))).toEqual(WALL);
    }
  });
});
