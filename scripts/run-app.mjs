#!/usr/bin/env node
// Builds an app and the packages it depends on (turbo, cached), quietly unless the build fails,
// then runs the app's bin with the remaining arguments. Used by `pnpm fwdgrad` and `pnpm bench`.
// The app runs in the folder the user ran pnpm from (INIT_CWD), so relative paths mean what they
// say; SIGINT, SIGTERM and SIGHUP are passed on to it (and SIGTERM when pnpm above it is ended),
// and an app ended by a signal is reported as such (exit 128 + the signal's number, as shells do).
import { spawn, spawnSync } from 'node:child_process';
import { constants } from 'node:os';
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
  process.stderr.write(`\nbuilding @fwdgrad/${app} failed (exit ${build.status ?? build.signal})\n`);
  process.exit(build.status ?? 1);
}
const child = spawn(process.execPath, [join(root, 'apps', app, 'dist', 'bin.js'), ...args], {
  stdio: 'inherit',
  env: process.env,
  // biome-ignore lint/suspicious/noUndeclaredEnvVars: set by pnpm for this script; no turbo task reads it
  cwd: process.env.INIT_CWD ?? process.cwd(),
});
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.on(signal, () => {
    // a terminal's Ctrl-C reaches the app too (same process group); the app ignores repeats
    if (child.exitCode === null && child.signalCode === null) child.kill(signal);
  });
}
// pnpm ends on SIGTERM without passing it on, leaving this process orphaned: when the parent is
// gone (this process is re-parented), stop the app as if it had been sent SIGTERM
const parent = process.ppid;
const watchdog = setInterval(() => {
  if (process.ppid !== parent && child.exitCode === null && child.signalCode === null) {
    clearInterval(watchdog);
    child.kill('SIGTERM');
  }
}, 500);
watchdog.unref();
child.on('error', (err) => {
  process.stderr.write(`cannot start ${app}: ${err.message}\n`);
  process.exit(1);
});
child.on('exit', (code, signal) => {
  if (signal !== null) {
    const code = 128 + (constants.signals[signal] ?? 0);
    const command = app === 'cli' ? 'fwdgrad' : `fwdgrad-${app}`;
    process.stderr.write(`${command} was ended by ${signal} (exit ${code})\n`);
    process.exit(code);
  }
  process.exit(code ?? 1);
});
