import { defineConfig } from 'vitest/config';

/**
 * The test settings every package and app shares (each `vitest.config.ts` re-exports this). Paths are
 * relative to the package folder, which is two levels below the repository root for all of them.
 */
export default defineConfig({
  test: {
    include: ['src/**/*.test.ts'],
    // FWDGRAD_TEST_BACKEND=cpu|native|tensorflow: the backend the suites run on (see the file)
    setupFiles: ['../../scripts/vitest-backend-setup.ts'],
    testTimeout: 120_000,
    hookTimeout: 120_000,
  },
});
