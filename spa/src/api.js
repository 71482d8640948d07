// REST calls to the gateway that served this page. Paths only, never a host: the page and
// its API share an origin, whatever proxy or ingress sits in front.

/** GET a JSON document; throws an Error carrying the API's {"error": ...} message. */
export async function getJson(path) {
  const resp = await fetch(path, { cache: "no-store", headers: { Accept: "application/json" } });
  let body = null;
  try {
    body = await resp.json();
  } catch {
    // a proxy's HTML error page: fall back to the status line below
  }
  if (!resp.ok) {
    throw new Error((body && body.error) || `${resp.status} ${resp.statusText}`);
  }
  return body;
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
