import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { main } from './program.js';
import { SUITE_NAMES } from './types.js';

function capture() {
  const out: string[] = [];
  const err: string[] = [];
  const spies = [
    vi.spyOn(process.stdout, 'write').mockImplementation((s) => {
      out.push(String(s));
      return true;
    }),
    vi.spyOn(process.stderr, 'write').mockImplementation((s) => {
      err.push(String(s));
      return true;
    }),
    vi.spyOn(console, 'error').mockImplementation((...a) => void err.push(a.join(' '))),
    vi.spyOn(console, 'warn').mockImplementation((...a) => void err.push(a.join(' '))),
  ];
  return {
    out,
    err,
    restore: () => {
      for (const s of spies) s.mockRestore();
    },
  };
}

describe('fwdgrad-bench command line', () => {
  afterEach(() => vi.restoreAllMocks());

  it.each([
    [[]],
    [['nosuch']],
    [['fused', '--budget', 'huge']],
    [['fused', '--seeds', '0']],
    [['fused', '--backend', 'tpu']],
    [['fused', '--frobnicate']],
  ])('exits 2 on a usage error: %j', async (argv) => {
    const c = capture();
    const code = await main(argv);
    c.restore();
    expect(code).toBe(2);
    expect(c.err.join('').length).toBeGreaterThan(0);
  });

  it('lists the suites', async () => {
    const c = capture();
    const code = await main(['list']);
    c.restore();
    expect(code).toBe(0);
    for (const name of SUITE_NAMES) expect(c.out.join('')).toContain(name);
  });

  it('runs a suite with --json: one object per row on stdout, files in --out', async () => {
    const out = mkdtempSync(join(tmpdir(), 'bench-cli-'));
    const c = capture();
    const code = await main([
      'fused',
      '--budget',
      'smoke',
      '--backend',
      'cpu',
      '--json',
      '--no-progress',
      '--out',
      out,
    ]);
    c.restore();
    expect(code).toBe(0);
    const rows = c.out
      .join('')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(rows).toHaveLength(8);
    for (const r of rows) {
      expect(r.suite).toBe('fused');
      for (const f of ['shape', 'op', 'naive_bytes', 'fused_bytes', 'naive_ms', 'fused_ms'])
        expect(r).toHaveProperty(f);
    }
    const files = readdirSync(join(out, 'fused'));
    expect(files.filter((f) => f.endsWith('.json'))).toHaveLength(1);
    expect(files).toContain('latest.md');
    rmSync(out, { recursive: true, force: true });
  });
});
