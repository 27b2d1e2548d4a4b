#!/usr/bin/env node
// Builds an app and the packages it depends on (turbo, cached), quietly unless the build fails,
// then runs the app's bin with the remaining arguments. Used by `pnpm fwdgrad` and `pnpm bench`.
import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const [app, ...args] = process.argv.slice(2);
const env = { ...process.env, TURBO_TELEMETRY_DISABLED: '1', TURBO_NO_UPDATE_NOTIFIER: '1' };
const build = spawnSync(
  process.platform === 'win32' ? 'pnpm.cmd' : 'pnpm',
  ['exec', 'turbo', 'run', 'build', `--filter=@fwdgrad/${app}...`, '--output-logs=errors-only'],
  { cwd: root, env, encoding: 'utf8' },
);
if (build.status !== 0) {
  process.stderr.write(build.stdout ?? '');
  process.stderr.write(build.stderr ?? '');
  process.stderr.write(`\nbuilding @fwdgrad/${app} failed (exit ${build.status})\n`);
  process.exit(build.status ?? 1);
}
const run = spawnSync(process.execPath, [join(root, 'apps', app, 'dist', 'bin.js'), ...args], {
  stdio: 'inherit',
  env: process.env,
});
process.exit(run.status ?? 1);
