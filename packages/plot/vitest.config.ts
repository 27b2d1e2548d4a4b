import { defineConfig } from 'vitest/config';

// No tfjs here, so none of the shared native-kernel setup (../../vitest.shared.ts) applies.
export default defineConfig({ test: { include: ['src/**/*.test.ts'] } });
