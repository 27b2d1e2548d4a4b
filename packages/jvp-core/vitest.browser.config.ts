import { playwright } from '@vitest/browser-playwright';
import { defineConfig } from 'vitest/config';
import { CHROMIUM_ARGS, chromiumPath } from '../../scripts/chromium.mjs';

/**
 * jvp-core's rule tests in headless Chromium (issue 16), once per tfjs GPU backend: `webgl` (WebGL2 on ANGLE +
 * SwiftShader) and `webgpu` (SwiftShader's Vulkan). The same test files as in Node; `testBackend()`
 * (testing.test-util.ts) reads the backend each instance provides.
 */
export default defineConfig({
  test: {
    include: ['src/rules.test.ts'],
    setupFiles: ['./src/browser-setup.test-util.ts'],
    testTimeout: 300_000,
    hookTimeout: 120_000,
    browser: {
      enabled: true,
      headless: true,
      screenshotFailures: false,
      provider: playwright({ launchOptions: { executablePath: chromiumPath(), args: CHROMIUM_ARGS } }),
      instances: [
        { browser: 'chromium', name: 'webgl', provide: { backend: 'webgl' } },
        { browser: 'chromium', name: 'webgpu', provide: { backend: 'webgpu' } },
      ],
    },
  },
});
