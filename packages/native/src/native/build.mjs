#!/usr/bin/env node
// Compiles the native kernels (fwdgrad.c) into build/fwdgrad.node with the system C compiler.
//
// Never fails the install: without a compiler or Node's headers it prints why, writes
// build/build.json with the reason, and exits 0 — @fwdgrad/native then reports the addon as
// unavailable and callers keep tfjs's own kernels. No BLAS is needed here: the addon looks for one
// (OpenBLAS, BLIS, MKL, libblas) with dlopen when it is loaded.
//
// Environment: CC (compiler, default cc), FWDGRAD_NATIVE_CFLAGS (replaces -O3 -march=native),
// FWDGRAD_NODE_HEADERS (folder holding node_api.h), FWDGRAD_NATIVE_BUILD=0 (skip), FWDGRAD_NATIVE_OUT
// (output folder instead of build/, for tests).
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '..', '..');
const outDir = process.env.FWDGRAD_NATIVE_OUT || join(root, 'build');
const target = join(outDir, 'fwdgrad.node');
const source = join(here, 'fwdgrad.c');

if (process.argv.includes('--if-missing') && existsSync(target)) process.exit(0);

function record(result) {
  mkdirSync(outDir, { recursive: true });
  writeFileSync(join(outDir, 'build.json'), `${JSON.stringify(result, null, 2)}\n`);
}

function skip(reason) {
  record({ ok: false, reason });
  console.warn(`@fwdgrad/native: native kernels not built (${reason}); tfjs's own kernels will be used`);
  process.exit(0);
}

if (process.env.FWDGRAD_NATIVE_BUILD === '0') skip('FWDGRAD_NATIVE_BUILD=0');

// Node's headers: an explicit folder, the running Node's own install prefix, then npm's nodedir.
const headerDirs = [
  process.env.FWDGRAD_NODE_HEADERS,
  join(dirname(dirname(process.execPath)), 'include', 'node'),
  process.env.npm_config_nodedir && join(process.env.npm_config_nodedir, 'include', 'node'),
  '/usr/include/node',
  '/usr/local/include/node',
].filter(Boolean);
const headers = headerDirs.find((d) => existsSync(join(d, 'node_api.h')));
if (!headers) skip(`node_api.h not found in ${headerDirs.join(', ')} (set FWDGRAD_NODE_HEADERS)`);

const cc = process.env.CC || 'cc';
const opt = process.env.FWDGRAD_NATIVE_CFLAGS?.split(/\s+/).filter(Boolean);
// Try the fastest flags first; drop -march=native and OpenMP when the compiler refuses them.
const attempts = opt
  ? [opt]
  : [['-O3', '-march=native', '-fopenmp'], ['-O3', '-fopenmp'], ['-O3', '-march=native'], ['-O3']];
const errors = [];
mkdirSync(outDir, { recursive: true });
for (const flags of attempts) {
  const args = [
    ...flags,
    '-std=gnu11',
    '-pthread',
    '-fPIC',
    '-shared',
    '-DNODE_GYP_MODULE_NAME=fwdgrad',
    `-I${headers}`,
    source,
    '-o',
    target,
    ...(process.platform === 'darwin' ? ['-undefined', 'dynamic_lookup'] : ['-ldl']),
    '-lm',
  ];
  const r = spawnSync(cc, args, { encoding: 'utf8' });
  if (r.error) skip(`compiler '${cc}' not found (${r.error.message})`);
  if (r.status === 0) {
    record({ ok: true, compiler: cc, flags, headers });
    console.log(`@fwdgrad/native: built ${target} (${cc} ${flags.join(' ')})`);
    process.exit(0);
  }
  errors.push(`${flags.join(' ')}: ${(r.stderr || '').split('\n').slice(0, 3).join(' | ')}`);
}
skip(`compilation failed: ${errors.join('; ')}`);
