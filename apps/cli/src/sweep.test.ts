import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { cliTrainCommand } from './sweep.js';

const dirs: string[] = [];
function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'fwdgrad-sweep-'));
  dirs.push(d);
  return d;
}
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

const bin = cliTrainCommand().args[0];
const env = { ...process.env, FWDGRAD_THREADS: '1' };

/** Runs the built fwdgrad command in a child process. */
function fwdgrad(args: string[]) {
  const r = spawnSync(process.execPath, [bin, ...args], { encoding: 'utf8', env });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

/** The sha256 of a checkpoint's payload (every parameter and optimiser value), from its header. */
function payloadSha(file: string): string {
  const buf = readFileSync(file);
  const headerLength = buf.readUInt32LE(8);
  return JSON.parse(buf.subarray(44, 44 + headerLength).toString('utf8')).payloadSha256;
}

const TINY = { model: 'S/1/1', epochs: 2, 'limit-train': 256, 'limit-test': 128, 'batch-size': 64 };

describe('fwdgrad sweep run (the embedded runner)', () => {
  it('runs the grid in run folders with the numbers of plain train runs; skips finished runs; resumes bit-exactly', () => {
    const dir = tempDir();
    const spec = join(dir, 'tiny.json');
    writeFileSync(spec, JSON.stringify({ seed: [0, 1], algo: ['bp', 'lg-fg-a'], ...TINY }));
    const root = join(dir, 'root');
    const first = fwdgrad(['sweep', 'run', spec, '--root', root, '--workers', '2']);
    expect(first.code, first.err).toBe(0);
    const names = ['seed=0,algo=bp', 'seed=0,algo=lg-fg-a', 'seed=1,algo=bp', 'seed=1,algo=lg-fg-a'];
    for (const name of names) expect(existsSync(join(root, name, 'result.json'))).toBe(true);

    // the same runs one after the other with plain `fwdgrad train`
    for (const [i, name] of names.entries()) {
      const plainDir = join(dir, `plain-${i}`);
      const [seed, algo] = [name.includes('seed=1') ? '1' : '0', name.endsWith('bp') ? 'bp' : 'lg-fg-a'];
      const plain = fwdgrad(
        [
          'train',
          '--seed',
          seed,
          '--algo',
          algo,
          '--model',
          'S/1/1',
          '--epochs',
          '2',
          '--limit-train',
          '256',
        ].concat([
          '--limit-test',
          '128',
          '--batch-size',
          '64',
          '--run-dir',
          plainDir,
          '--json',
          '--no-progress',
        ]),
      );
      expect(plain.code, plain.err).toBe(0);
      const expected = JSON.parse(plain.out.trim().split('\n').pop() as string);
      const got = JSON.parse(readFileSync(join(root, name, 'result.json'), 'utf8'));
      expect(got.test_error).toBe(expected.test_error);
      expect(got.train_error).toBe(expected.train_error);
      expect(payloadSha(join(root, name, 'checkpoint-2.bin'))).toBe(
        payloadSha(join(plainDir, 'checkpoint-2.bin')),
      );
    }

    // an interrupted run (killed during epoch 2: checkpoint 1 only, no result) is resumed; finished runs are skipped
    const victim = join(root, 'seed=1,algo=lg-fg-a');
    const finalSha = payloadSha(join(victim, 'checkpoint-2.bin'));
    const result = readFileSync(join(victim, 'result.json'), 'utf8');
    rmSync(join(victim, 'result.json'));
    rmSync(join(victim, 'checkpoint-2.bin'));
    const again = fwdgrad(['sweep', 'run', spec, '--root', root]);
    expect(again.code, again.err).toBe(0);
    expect(again.err).toMatch(/seed=0,algo=bp: already finished/);
    expect(again.err).toMatch(/3 earlier/);
    expect(readFileSync(join(victim, 'train.log'), 'utf8')).toMatch(/resuming .* after epoch 1/);
    expect(payloadSha(join(victim, 'checkpoint-2.bin'))).toBe(finalSha);
    const resumed = JSON.parse(readFileSync(join(victim, 'result.json'), 'utf8'));
    expect(resumed.test_error).toBe(JSON.parse(result).test_error);
    expect(resumed.train_error).toBe(JSON.parse(result).train_error);

    // status and report: an unfinished run (checkpoint 1 only) has no test_error
    rmSync(join(victim, 'result.json'));
    rmSync(join(victim, 'checkpoint-2.bin'));
    const status = fwdgrad(['sweep', 'status', spec, '--root', root]);
    expect(status.out).toMatch(/partial \(epoch 1\/2\) +seed=1,algo=lg-fg-a/);
    expect(status.out).toMatch(/4 runs: 3 finished, 1 partial, 0 failed, 0 not started/);
    const out = join(dir, 'report');
    const report = fwdgrad(['sweep', 'report', spec, '--root', root, '--json', '--out', out]);
    expect(report.code, report.err).toBe(0);
    const rows = report.out
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(rows.map((r) => [r.seed, r.algo, r.state])).toEqual([
      [0, 'bp', 'finished'],
      [0, 'lg-fg-a', 'finished'],
      [1, 'bp', 'finished'],
      [1, 'lg-fg-a', 'partial'],
    ]);
    expect(rows[3]).not.toHaveProperty('test_error');
    expect(rows[3]['limit-train']).toBe(256);
    const results = names
      .slice(0, 3)
      .map((n) => JSON.parse(readFileSync(join(root, n, 'result.json'), 'utf8').toString()));
    expect(rows[0].test_error).toBe(results[0].test_error);
    expect(rows[2].examples_per_second).toBe(results[2].examples_per_second);
    const cells = JSON.parse(readFileSync(join(out, 'report.json'), 'utf8')).cells;
    const bp = [results[0].test_error, results[2].test_error];
    const m = (bp[0] + bp[1]) / 2;
    expect(cells[0].values).toEqual({ algo: 'bp' });
    expect(cells[0].test_error.mean).toBeCloseTo(m, 12);
    expect(cells[0].test_error.std).toBeCloseTo(Math.sqrt((bp[0] - m) ** 2 + (bp[1] - m) ** 2), 12);
    expect([cells[1].finished, cells[1].runs, cells[1].test_error.n, cells[1].test_error.std]).toEqual([
      1, 2, 1, 0,
    ]);
    expect(readFileSync(join(out, 'report.svg'), 'utf8')).toMatch(/^<svg[\s\S]*bp[\s\S]*lg-fg-a/);
    expect(readFileSync(join(out, 'report.md'), 'utf8')).toMatch(
      /\| lg-fg-a \| [0-9.]+ \| [0-9.]+ \| 1\/2 \|/,
    );
  });

  it('refuses a spec key that is not a train flag, before running anything', () => {
    const dir = tempDir();
    const spec = join(dir, 'typo.yaml');
    writeFileSync(spec, 'algo: [bp]\nlearning-rate: 0.1\n');
    const r = fwdgrad(['sweep', 'run', spec, '--root', join(dir, 'root')]);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/'learning-rate' is not a flag of fwdgrad train/);
    expect(existsSync(join(dir, 'root'))).toBe(false);
  });

  it('records a failing run and exits 1 naming it', () => {
    const dir = tempDir();
    const spec = join(dir, 'bad.json');
    writeFileSync(spec, JSON.stringify({ ...TINY, epochs: 1, 'batch-size': [64, 512] }));
    const r = fwdgrad(['sweep', 'run', spec, '--root', join(dir, 'root')]);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/1 run failed \(batch-size=512\)/);
    expect(readFileSync(join(dir, 'root', 'batch-size=512', 'error.txt'), 'utf8')).toMatch(
      /batch size 512 is larger than the 256 training examples/,
    );
    expect(existsSync(join(dir, 'root', 'batch-size=64', 'result.json'))).toBe(true);
  });
});
