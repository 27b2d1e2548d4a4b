import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';

// The install script (src/native/build.mjs) must never fail an install: without a compiler it exits 0
// and records why; with one it builds an addon that loads.
const here = dirname(fileURLToPath(import.meta.url));
const script = join(here, 'native', 'build.mjs');
const out = mkdtempSync(join(tmpdir(), 'fwdgrad-native-build-'));
afterAll(() => rmSync(out, { recursive: true, force: true }));

function build(env: Record<string, string>) {
  return spawnSync(process.execPath, [script], {
    env: { ...process.env, FWDGRAD_NATIVE_OUT: out, ...env },
    encoding: 'utf8',
  });
}

describe('native build script', () => {
  it('without a compiler: exit 0, a warning, and the reason in build.json', () => {
    const r = build({ CC: '/nonexistent/cc' });
    expect(r.status).toBe(0);
    expect(r.stderr).toMatch(/native kernels not built .*compiler '\/nonexistent\/cc' not found/);
    const record = JSON.parse(readFileSync(join(out, 'build.json'), 'utf8'));
    expect(record.ok).toBe(false);
    expect(record.reason).toMatch(/not found/);
  });

  it('skips on request', () => {
    const r = build({ FWDGRAD_NATIVE_BUILD: '0' });
    expect(r.status).toBe(0);
    expect(JSON.parse(readFileSync(join(out, 'build.json'), 'utf8')).reason).toBe('FWDGRAD_NATIVE_BUILD=0');
  });

  it.runIf(process.env.FWDGRAD_NATIVE !== '0')(
    'with a compiler: an addon that loads and reports its BLAS',
    () => {
      const r = build({ FWDGRAD_NATIVE_CFLAGS: '-O1' });
      expect(r.status).toBe(0);
      expect(JSON.parse(readFileSync(join(out, 'build.json'), 'utf8'))).toMatchObject({
        ok: true,
        flags: ['-O1'],
      });
      const probe = spawnSync(
        process.execPath,
        [
          '-e',
          `const a = require(${JSON.stringify(join(out, 'fwdgrad.node'))}); console.log(JSON.stringify(a.loadBlas('none')))`,
        ],
        { encoding: 'utf8' },
      );
      expect(probe.status).toBe(0);
      expect(JSON.parse(probe.stdout)).toMatchObject({ blas: null, threads: 1 });
    },
  );
});
