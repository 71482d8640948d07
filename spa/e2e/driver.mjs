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

const ops = {
  goto: ({ url }) => page.goto(url, { waitUntil: "load" }).then((resp) => resp?.status() ?? null),
  eval: ({ expr }) => page.evaluate(expr),
  click: ({ selector }) => page.click(selector),
  fill: ({ selector, value }) => page.fill(selector, value),
  screenshot: ({ path, fullPage = false }) => page.screenshot({ path, fullPage }).then(() => path),
  viewport: ({ width, height }) => page.setViewportSize({ width, height }),
  problems: () => problems.splice(0),
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
