import { defineConfig } from 'vitest/config';

/**
 * The web app's tests, run by `pnpm test` in its first pass (scripts/test-browser.mjs): Node drives the system
 * Chromium through playwright-core against the built app (`dist`), and bundles every library for the browser.
 */
export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 600_000,
    hookTimeout: 120_000,
    fileParallelism: false,
  },
});
