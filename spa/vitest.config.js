// Unit tests of the dashboard's plain modules (`npm test`, run by `make test`). Node, no
// browser: the modules under test touch no DOM; components are covered by the real-Chromium
// tests in tests/e2e/test_dashboard.py. Kept apart from vite.config.js so the build is untouched.
import { defineConfig } from "vitest/config";

// Clock formatting depends on the time zone: one zone for every machine (workers inherit it).
process.env.TZ = "UTC";

export default defineConfig({
  test: {
    include: ["test/**/*.test.js"],
    environment: "node",
  },
});
