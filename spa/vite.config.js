// Build of the dashboard. The output is plain files: the gateway serves them with a CSP that
// forbids inline and eval'd script, so everything (JS and CSS) lands in separate files.
import { defineConfig } from "vite";
import vue from "@vitejs/plugin-vue";

export default defineConfig({
  // Relative asset URLs: the page works wherever the gateway mounts dist/ (hash routing keeps
  // the page itself at one path).
  base: "./",
  plugins: [vue()],
  define: {
    // Composition API only: drops the Options API from Vue's runtime-only build.
    __VUE_OPTIONS_API__: "false",
    __VUE_PROD_DEVTOOLS__: "false",
    __VUE_PROD_HYDRATION_MISMATCH_DETAILS__: "false",
  },
  build: {
    outDir: "dist",
    emptyOutDir: true,
    // Never inline assets as data: URLs into JS or CSS; files are simpler to reason about.
    assetsInlineLimit: 0,
    // modulepreload's polyfill is for browsers without <link rel=modulepreload>; not needed.
    modulePreload: { polyfill: false },
  },
});
