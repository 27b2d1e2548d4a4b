#!/usr/bin/env node
// Runs a package's browser tests (`vitest run --config vitest.browser.config.ts`) in headless Chromium
// (scripts/chromium.mjs). `pnpm test` runs every suite twice; the second pass (FWDGRAD_TEST_BACKEND=native)
// installs @fwdgrad/native's kernels in Node, which browsers never have, so the browser tests run in the
// first pass (FWDGRAD_TEST_BACKEND unset or cpu) only.
import { spawnSync } from 'node:child_process';
import { chromiumPath } from './chromium.mjs';

const nodeBackend =
  process.env.FWDGRAD_TEST_BACKEND ?? (process.env.FWDGRAD_NATIVE_KERNELS === '1' ? 'native' : 'cpu');
if (nodeBackend !== 'cpu') {
  console.log(
    `browser tests: run in the first pass of \`pnpm test\` (the Node backend ${nodeBackend} does not exist in browsers)`,
  );
  process.exit(0);
}
chromiumPath(); // fails early, naming the fix, when there is no Chromium
const args = ['exec', 'vitest', 'run', '--config', 'vitest.browser.config.ts', ...process.argv.slice(2)];
const run = spawnSync('pnpm', args, { stdio: 'inherit' });
process.exit(run.status ?? 1);
