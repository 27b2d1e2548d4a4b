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
