// Roles as the gateway orders them (viewer < operator < admin, doc/security.md) and what the
// page shows to each. The gateway checks every request; this only keeps the page from showing
// controls its user cannot use, so a viewer never sees (not even disabled) a job's Delete.

const ORDER = ["viewer", "operator", "admin"];

/** Whether `role` includes `required`; an unknown role includes nothing. */
export function allows(role, required) {
  const have = ORDER.indexOf(role);
  return have >= 0 && have >= ORDER.indexOf(required);
}

/** The role the page acts on: everyone is admin when the server runs without authentication. */
export function effectiveRole(user) {
  if (!user) return null;
  return user.auth === false ? "admin" : user.role;
}

/** Analysis jobs (list, submit, delete) are for operators and admins. */
export function canManageJobs(user) {
  return allows(effectiveRole(user), "operator");
}

/** Zones and lines are edited by operators and admins; a viewer sees them read-only. */
export function canEditRules(user) {
  return allows(effectiveRole(user), "operator");
}

/** Managed sources (add, edit, delete) are for operators and admins; a viewer sees the table. */
export function canManageSources(user) {
  return allows(effectiveRole(user), "operator");
}

/** The route to show `user`: a view the user may not see falls back to the wall. */
export function visibleRoute(route, user) {
  if (route.name === "analysis" && !canManageJobs(user)) return { name: "wall", stream: null };
  return route;
}
