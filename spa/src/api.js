// REST calls to the gateway that served this page. Paths only, never a host: the page and
// its API share an origin, whatever proxy or ingress sits in front. `request` is the one
// fetch of the page: it sends the CSRF token on writes, turns 401 into "logged out" and
// retries once after a CSRF refusal (doc/dashboard.md, "Login and roles").

const WRITES = new Set(["POST", "PUT", "PATCH", "DELETE"]);

/** An API answer that was not 2xx (status 0: the server could not be reached at all). */
export class ApiError extends Error {
  constructor(status, message, retryAfter = null) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.retryAfter = retryAfter; // seconds, from Retry-After, or null
  }
}

// Set by the session (session.js); none until then, so the plain helpers work alone.
const hooks = { csrf: () => null, loggedOut: () => {}, refreshCsrf: null };

/**
 * What `request` needs from the session: `csrf()` the current token, `loggedOut()` called on
 * a 401, `refreshCsrf()` (async) to reload it after a CSRF refusal. Returns the undo.
 */
export function setAuthHooks({ csrf, loggedOut, refreshCsrf }) {
  Object.assign(hooks, { csrf, loggedOut, refreshCsrf });
  return () => Object.assign(hooks, { csrf: () => null, loggedOut: () => {}, refreshCsrf: null });
}

/** Seconds of a Retry-After header (delta-seconds or an HTTP date), or null. */
export function retryAfterSeconds(value, now = Date.now()) {
  if (!value) return null;
  const text = value.trim();
  if (/^\d+$/.test(text)) return Number(text);
  const when = Date.parse(text);
  return Number.isNaN(when) ? null : Math.max(0, Math.ceil((when - now) / 1000));
}

async function send(path, method, body) {
  const headers = { Accept: "application/json" };
  const init = { method, cache: "no-store", credentials: "same-origin", headers };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  if (WRITES.has(method)) {
    const token = hooks.csrf();
    if (token) headers["X-CSRF-Token"] = token;
  }
  try {
    return await fetch(path, init);
  } catch (err) {
    // fetch rejects only when no answer came (network down, server gone, CSP)
    throw new ApiError(0, `the server cannot be reached (${err.message})`);
  }
}

/**
 * `method` `path` with an optional JSON `body`; resolves to the parsed answer (null when there
 * is none, as for 204) or throws an ApiError carrying the API's {"error": ...} message.
 * `loginAttempt`: a 401 is a wrong password, not the end of a session.
 */
export async function request(path, { method = "GET", body, loginAttempt = false } = {}) {
  let resp = await send(path, method, body);
  let answer = await parse(resp);
  if (resp.status === 403 && WRITES.has(method) && /csrf/i.test(answer.message) && hooks.refreshCsrf) {
    await hooks.refreshCsrf();
    resp = await send(path, method, body);
    answer = await parse(resp);
  }
  if (resp.ok) return answer.body;
  if (resp.status === 401 && !loginAttempt) hooks.loggedOut(answer.message);
  throw new ApiError(resp.status, answer.message, retryAfterSeconds(resp.headers.get("Retry-After")));
}

async function parse(resp) {
  let body = null;
  try {
    if (resp.status !== 204) body = await resp.json();
  } catch {
    // a proxy's HTML error page: fall back to the status line below
  }
  const message = (body && body.error) || `${resp.status} ${resp.statusText}`.trim();
  return { body, message };
}

/** GET a JSON document. */
export function getJson(path) {
  return request(path);
}

/** POST, PUT or DELETE with an optional JSON body (the CSRF token goes with it). */
export function write(method, path, body) {
  return request(path, { method, body });
}

/** `/api/streams/{id}{rest}` with the id encoded (ids are safe, but never trust that). */
export function streamPath(id, rest = "") {
  return `/api/streams/${encodeURIComponent(id)}${rest}`;
}

/** `path?k=v&...`, skipping null and undefined values. */
export function withQuery(path, params) {
  const query = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    if (value !== null && value !== undefined) query.set(key, String(value));
  }
  const text = query.toString();
  return text ? `${path}?${text}` : path;
}
