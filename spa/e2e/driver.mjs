// A headless Chromium that a test drives line by line: one JSON request per stdin line
// ({"id", "op", ...args}), one JSON answer per stdout line ({"id", "ok", "value" | "error"}).
// The browser tests (tests/e2e/test_dashboard.py) keep their logic in Python; this only
// gives them a real browser. Chromium is Debian's (`make chromium`); playwright-core comes
// from `npm ci` and never downloads a browser of its own.
import readline from "node:readline";
import { chromium } from "playwright-core";

const executablePath = process.env.EI_CHROMIUM || "/usr/bin/chromium";
const browser = await chromium.launch({
  executablePath,
  // Root in a container has no user namespaces for Chromium's sandbox.
  args: process.getuid?.() === 0 ? ["--no-sandbox"] : [],
});
const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });

// Everything the page complains about (CSP violations are console errors too).
const problems = [];
page.on("console", (msg) => {
  if (msg.type() === "error") problems.push(`console: ${msg.text()}`);
});
page.on("pageerror", (err) => problems.push(`page error: ${err.message}`));

// What the page's websockets receive, as the browser got it off the wire: per live message,
// whether it was binary (a frame's JPEG and its first result), its size, and which stream,
// seq and type its result is for. Bounded: a test reads and clears it (op wsFrames).
const received = [];
const RECEIVED_MAX = 20000;
function liveMessage(payload) {
  if (typeof payload === "string") {
    const message = JSON.parse(payload);
    return message.result ? { binary: false, bytes: payload.length, result: message.result } : null;
  }
  const length = payload.readUInt32BE(0);
  const header = JSON.parse(payload.subarray(4, 4 + length).toString("utf8"));
  return { binary: true, bytes: payload.length, jpeg: payload.length - 4 - length, result: header.result };
}
page.on("websocket", (ws) => {
  ws.on("framereceived", ({ payload }) => {
    let message = null;
    try {
      message = liveMessage(payload);
    } catch (err) {
      problems.push(`websocket: unreadable message (${err.message})`);
    }
    if (!message || received.length >= RECEIVED_MAX) return;
    const { stream, seq, type } = message.result;
    received.push({ binary: message.binary, bytes: message.bytes, jpeg: message.jpeg ?? 0, stream, seq, type });
  });
});

const ops = {
  goto: ({ url }) => page.goto(url, { waitUntil: "load" }).then((resp) => resp?.status() ?? null),
  eval: ({ expr }) => page.evaluate(expr),
  click: ({ selector }) => page.click(selector),
  fill: ({ selector, value }) => page.fill(selector, value),
  screenshot: ({ path, fullPage = false }) => page.screenshot({ path, fullPage }).then(() => path),
  viewport: ({ width, height }) => page.setViewportSize({ width, height }),
  problems: () => problems.splice(0),
  wsFrames: () => received.splice(0),
  // Real mouse input at page coordinates: [{action: "move" | "down" | "up" | "click", x, y}].
  mouse: async ({ steps }) => {
    for (const { action, x, y } of steps) {
      if (action === "click") await page.mouse.click(x, y);
      else if (action === "move") await page.mouse.move(x, y, { steps: 4 });
      else if (action === "down") await page.mouse.down();
      else if (action === "up") await page.mouse.up();
      else throw new Error(`unknown mouse action ${action}`);
    }
  },
};

const reply = (message) => process.stdout.write(`${JSON.stringify(message)}\n`);
reply({ id: 0, ok: true, value: browser.version() }); // ready
for await (const line of readline.createInterface({ input: process.stdin })) {
  if (!line.trim()) continue;
  const { id, op, ...args } = JSON.parse(line);
  try {
    if (!(op in ops)) throw new Error(`unknown op ${op}`);
    reply({ id, ok: true, value: (await ops[op](args)) ?? null });
  } catch (err) {
    reply({ id, ok: false, error: String(err?.message || err) });
  }
}
await browser.close();
