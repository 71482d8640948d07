// Frame messages and the websocket URL (doc/api.md, "Websocket").
import { describe, expect, it } from "vitest";
import { decodeFrame, websocketUrl } from "../src/live/protocol.js";
import { frameMessage } from "./frame-message.js";

describe("decodeFrame", () => {
  const header = { stream: "vtest-people", id: "1-0", result: { seq: 7, type: "people" } };
  const jpeg = Uint8Array.of(0xff, 0xd8, 0xff, 0xe0, 1, 2, 3, 0xff, 0xd9);

  it("returns the JSON header and the JPEG bytes", () => {
    const { header: got, jpeg: bytes } = decodeFrame(frameMessage(header, jpeg));
    expect(got).toEqual(header);
    expect(Array.from(bytes)).toEqual(Array.from(jpeg));
  });

  it("returns the JPEG as a view on the message's buffer, not a copy", () => {
    const buffer = frameMessage(header, jpeg);
    const { jpeg: bytes } = decodeFrame(buffer);
    expect(bytes.buffer).toBe(buffer);
    expect(bytes.byteOffset).toBe(buffer.byteLength - jpeg.length);
  });

  it("reads the header length in bytes, so non-ASCII stream names decode", () => {
    const named = { ...header, stream: "caf\u00e9-\u6771\u4eac" };
    const { header: got, jpeg: bytes } = decodeFrame(frameMessage(named, jpeg));
    expect(got.stream).toBe("caf\u00e9-\u6771\u4eac");
    expect(bytes.length).toBe(jpeg.length);
  });

  it("reads the length big-endian", () => {
    const buffer = frameMessage(header, jpeg);
    const json = JSON.stringify(header).length;
    expect(new Uint8Array(buffer, 0, 4)).toEqual(Uint8Array.of(0, 0, json >> 8, json & 0xff));
    expect(decodeFrame(buffer).header.id).toBe("1-0");
  });

  it("gives an empty JPEG when the message ends after the header", () => {
    expect(decodeFrame(frameMessage(header, new Uint8Array(0))).jpeg.length).toBe(0);
  });

  it("throws on a header length past the end of the message", () => {
    const buffer = frameMessage(header, jpeg);
    new DataView(buffer).setUint32(0, buffer.byteLength, false);
    expect(() => decodeFrame(buffer)).toThrow(RangeError);
  });

  it("throws on a message shorter than the length field", () => {
    expect(() => decodeFrame(new ArrayBuffer(3))).toThrow(RangeError);
  });

  it("throws on a header that is not JSON", () => {
    const buffer = frameMessage(header, jpeg);
    new Uint8Array(buffer, 4, 1)[0] = "<".charCodeAt(0);
    expect(() => decodeFrame(buffer)).toThrow(SyntaxError);
  });
});

describe("websocketUrl", () => {
  const http = { href: "http://dash.example:8080/#/streams/a" };
  const https = { href: "https://dash.example/ei/" };

  it("is /ws on the page's host when none is configured", () => {
    expect(websocketUrl(null, http)).toBe("ws://dash.example:8080/ws");
    expect(websocketUrl("", https)).toBe("wss://dash.example/ws");
  });

  it("resolves a relative URL against the page, with the page's security", () => {
    expect(websocketUrl("/live", http)).toBe("ws://dash.example:8080/live");
    expect(websocketUrl("live", https)).toBe("wss://dash.example/ei/live");
  });

  it("turns http(s) URLs into ws(s) URLs", () => {
    expect(websocketUrl("http://ws.example:8765/", https)).toBe("ws://ws.example:8765/");
    expect(websocketUrl("https://ws.example/", http)).toBe("wss://ws.example/");
  });

  it("keeps a ws: or wss: URL as configured", () => {
    expect(websocketUrl("wss://ws.example/x", http)).toBe("wss://ws.example/x");
    expect(websocketUrl("ws://10.0.0.2:8765/", https)).toBe("ws://10.0.0.2:8765/");
  });

  it("throws on a URL that cannot be parsed", () => {
    expect(() => websocketUrl("http://[::1", http)).toThrow(TypeError);
  });
});
