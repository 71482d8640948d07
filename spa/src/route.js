// Hash routing: `#/` is the wall, `#/streams/ID` a stream's detail, `#/sources` the managed
// sources (every role; only operators and admins change them), `#/analysis` the analysis
// jobs (operators and admins: auth/roles.js). The hash keeps the page at one path, so the
// gateway needs no SPA fallback route. Plain functions; the page's current route is
// composables/useRoute.js. Login is a state of the page (auth/session.js), not a route, so
// after logging in the user is where the link pointed.

export const ANALYSIS_HREF = "#/analysis";
export const SOURCES_HREF = "#/sources";

export function parseHash(hash) {
  if (/^#\/analysis\/?$/.test(hash)) return { name: "analysis", stream: null };
  if (/^#\/sources\/?$/.test(hash)) return { name: "sources", stream: null };
  const match = /^#\/streams\/([^/?#]+)\/?$/.exec(hash);
  if (match) {
    try {
      return { name: "detail", stream: decodeURIComponent(match[1]) };
    } catch {
      // malformed percent-encoding: show the wall
    }
  }
  return { name: "wall", stream: null };
}

export function streamHref(id) {
  return `#/streams/${encodeURIComponent(id)}`;
}
