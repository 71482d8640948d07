// The websocket protocol of doc/api.md: where to connect and how a frame message is laid out.

/**
 * The websocket URL: the configured one (GET /api/config) resolved against the page, or
 * `/ws` on the page's own host (the gateway proxies it to the websocket service).
 */
export function websocketUrl(configured, location) {
  const url = new URL(configured || "/ws", location.href);
  // A relative or http(s) URL follows the page's scheme: ws: under http:, wss: under https:.
  if (url.protocol === "http:") url.protocol = "ws:";
  else if (url.protocol === "https:") url.protocol = "wss:";
  return url.href;
}

/**
 * A binary frame message: uint32 BE header length, JSON header {stream, id, result}, then
 * the original JPEG, returned as a view on the same buffer (no copy).
 */
const utf8 = new TextDecoder();

export function decodeFrame(buffer) {
  const length = new DataView(buffer).getUint32(0, false);
  const header = JSON.parse(utf8.decode(new Uint8Array(buffer, 4, length)));
  const jpeg = new Uint8Array(buffer, 4 + length);
  return { header, jpeg };
}
