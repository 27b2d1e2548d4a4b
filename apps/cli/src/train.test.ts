import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it, vi } from 'vitest';
import { main } from './program.js';

const dirs: string[] = [];
function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'fwdgrad-cli-'));
  dirs.push(d);
  return d;
}

async function run(args: string[]) {
  const out: string[] = [];
  const err: string[] = [];
  const spies = [
    vi.spyOn(console, 'log').mockImplementation((...a) => {
      out.push(a.join(' '));
    }),
    vi.spyOn(console, 'error').mockImplementation((...a) => {
      err.push(a.join(' '));
    }),
    vi.spyOn(process.stderr, 'write').mockImplementation((s) => {
      err.push(String(s));
      return true;
    }),
  ];
  try {
    const code = await main(args);
    return { code, out: out.join('\n'), err: err.join('') };
  } finally {
    for (const s of spies) s.mockRestore();
  }
}

afterEach(() => vi.restoreAllMocks());
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

describe('fwdgrad train', () => {
  it('trains a short run and prints the JSON summary as its last line', async () => {
    const dir = join(tempDir(), 'run');
    const r = await run([
      'train',
      '--algo',
      'lg-fg-a',
      '--model',
      'S/1/1',
      '--epochs',
      '1',
      '--limit-train',
      '256',
      '--limit-test',
      '200',
      '--run-dir',
      dir,
      '--backend',
      'cpu',
      '--no-progress',
      '--json',
    ]);
    expect(r.code).toBe(0);
    const summary = JSON.parse(r.out.trim().split('\n').at(-1) as string);
    expect(Object.keys(summary).sort()).toEqual(
      [
        'algo',
        'backend',
        'dataset',
        'epochs',
        'examples_per_second',
        'model',
        'objective',
        'run_dir',
        'seconds',
        'test_error',
        'train_error',
      ].sort(),
    );
    expect(summary).toMatchObject({
      algo: 'lg-fg-a',
      model: 'S/1/1',
      dataset: 'mnist',
      epochs: 1,
      backend: 'cpu',
    });
    expect(summary.test_error).toBeGreaterThanOrEqual(0);
    expect(summary.test_error).toBeLessThanOrEqual(1);
    // an existing run is never overwritten
    const again = await run([
      'train',
      '--model',
      'S/1/1',
      '--epochs',
      '1',
      '--run-dir',
      dir,
      '--backend',
      'cpu',
    ]);
    expect(again.code).toBe(1);
    expect(again.err).toMatch(/already holds a run; pass --resume/);
  });

  it('rejects an unknown algorithm, model or preset with exit code 2', async () => {
    for (const args of [
      ['train', '--algo', 'sgd-magic'],
      ['train', '--model', 'XL/9/9'],
      ['train', '--preset', 'mnist-huge'],
      ['train', '--epochs', '0'],
    ]) {
      const r = await run(args);
      expect(r.code).toBe(2);
      expect(r.err).toMatch(/invalid|Allowed choices|expects/);
    }
  });

  it('names the problem for inconsistent sizes and missing data', async () => {
    const groups = await run([
      'train',
      '--model',
      'M/1/16',
      '--groups',
      '7',
      '--epochs',
      '1',
      '--backend',
      'cpu',
    ]);
    expect(groups.code).toBe(1);
    expect(groups.err).toMatch(/7/);
    expect(groups.err).toMatch(/divisors|divisible/);
    const missing = await run(['train', '--dataset', 'cifar10', '--backend', 'cpu']);
    expect(missing.code).toBe(1);
    expect(missing.err).toMatch(/--data-dir/);
    const nofile = await run(['train', '--dataset', 'cifar10', '--data-dir', tempDir(), '--backend', 'cpu']);
    expect(nofile.code).toBe(1);
    expect(nofile.err).toMatch(/fwdgrad data fetch cifar10/);
  });

  it('eval reports a folder that is not a run', async () => {
    const r = await run(['eval', '--run', tempDir(), '--backend', 'cpu']);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/no config\.json/);
  });
});
