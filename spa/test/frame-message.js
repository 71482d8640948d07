// Test helper: a frame message as the websocket service lays it out (doc/api.md).

/** uint32 BE header length, the JSON header, then the JPEG bytes. */
export function frameMessage(header, jpegBytes) {
  const json = new TextEncoder().encode(JSON.stringify(header));
  const buffer = new ArrayBuffer(4 + json.length + jpegBytes.length);
  new DataView(buffer).setUint32(0, json.length, false);
  new Uint8Array(buffer, 4).set(json);
  new Uint8Array(buffer, 4 + json.length).set(jpegBytes);
  return buffer;
}
