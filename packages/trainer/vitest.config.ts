import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['src/**/*.test.ts'],
    setupFiles: ['../../scripts/vitest-native-setup.ts'],
    testTimeout: 120_000,
    hookTimeout: 120_000,
  },
});
