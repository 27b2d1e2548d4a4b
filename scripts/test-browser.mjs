#!/usr/bin/env node
// Runs a package's browser tests (`vitest run --config vitest.browser.config.ts`) in headless Chromium
// (scripts/chromium.mjs). `pnpm test` runs every suite twice; the second pass (FWDGRAD_NATIVE_KERNELS=1)
// installs @fwdgrad/native's kernels in Node, which browsers never have, so the browser tests run in the
// first pass only.
import { spawnSync } from 'node:child_process';
import { chromiumPath } from './chromium.mjs';

if (process.env.FWDGRAD_NATIVE_KERNELS === '1') {
  console.log(
    'browser tests: run in the first pass of `pnpm test` (native kernels do not exist in browsers)',
  );
  process.exit(0);
}
chromiumPath(); // fails early, naming the fix, when there is no Chromium
const args = ['exec', 'vitest', 'run', '--config', 'vitest.browser.config.ts', ...process.argv.slice(2)];
const run = spawnSync('pnpm', args, { stdio: 'inherit' });
process.exit(run.status ?? 1);
