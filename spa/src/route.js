// Hash routing: `#/` is the wall, `#/streams/ID` a stream's detail. The hash keeps the page at
// one path, so the gateway needs no SPA fallback route. Plain functions; the page's current
// route is composables/useRoute.js.

export function parseHash(hash) {
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
