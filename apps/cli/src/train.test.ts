import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { encodeIdx, IDX_FILES } from '@fwdgrad/datasets';
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
    expect(groups.code).toBe(2);
    expect(groups.err).toMatch(/7/);
    expect(groups.err).toMatch(/divisors|divisible/);
    const missing = await run(['train', '--dataset', 'cifar10', '--backend', 'cpu']);
    expect(missing.code).toBe(1);
    expect(missing.err).toMatch(/--data-dir/);
    const nofile = await run(['train', '--dataset', 'cifar10', '--data-dir', tempDir(), '--backend', 'cpu']);
    expect(nofile.code).toBe(1);
    expect(nofile.err).toMatch(/fwdgrad data fetch cifar10/);
  });

  it('eval reports a folder that is not a run, or does not exist', async () => {
    const r = await run(['eval', '--run', tempDir(), '--backend', 'cpu']);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/no config\.json and no checkpoint/);
    const missing = await run(['eval', '--run', join(tempDir(), 'nope'), '--backend', 'cpu']);
    expect(missing.err).toMatch(/the run folder .*nope does not exist/);
  });

  it('late checks are usage errors (exit 2) before anything is written', async () => {
    const dir = join(tempDir(), 'run');
    for (const [args, message] of [
      [['--limit-train', '70000'], /--limit-train 70000 is more than the 60000 training examples/],
      [['--limit-test', '10001'], /--limit-test 10001 is more than the 10000 test examples/],
      [['--seed', '1e30'], /--seed expects an integer/],
      [['--resume'], /--resume needs --run-dir/],
      [['--epochs', '2', '--warmup-epochs', '3', '--schedule', 'warmup-cosine'], /warmupEpochs/],
    ] as const) {
      const r = await run([
        'train',
        '--model',
        'S/1/1',
        '--backend',
        'cpu',
        ...(args[0] === '--resume' ? args : [...args, '--run-dir', dir]),
      ]);
      expect(r.code).toBe(2);
      expect(r.err).toMatch(message);
    }
    expect(existsSync(dir)).toBe(false);
  });

  it('takes settings from --config (flags win), warns about flags the rule ignores, logs steps and plots', async () => {
    const dir = join(tempDir(), 'run');
    const config = join(tempDir(), 'settings.json');
    writeFileSync(
      config,
      JSON.stringify({
        algo: 'bp',
        samples: 4,
        model: 'S/1/1',
        epochs: 1,
        'limit-train': 128,
        'limit-test': 100,
        'batch-size': 64,
        backend: 'cpu',
        seed: 9,
      }),
    );
    const r = await run([
      'train',
      '--config',
      config,
      '--seed',
      '5',
      '--run-dir',
      dir,
      '--log-every',
      '1',
      '--no-progress',
    ]);
    expect(r.code).toBe(0);
    expect(r.err).toMatch(/warning: --samples does not apply to bp/);
    const saved = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'));
    expect(saved).toMatchObject({
      algorithm: 'bp',
      seed: 5,
      limitTrain: 128,
      algorithmOptions: { samples: 4 },
    });
    expect(saved.data).toEqual({ loader: 'mnist', dir: null });
    expect(readFileSync(join(dir, 'steps.jsonl'), 'utf8').trim().split('\n')).toHaveLength(2);
    expect(readdirSync(dir).sort()).toEqual([
      'checkpoint-1.bin',
      'config.json',
      'error.svg',
      'loss.svg',
      'metrics.jsonl',
      'steps.jsonl',
    ]);
    const bad = await run(['train', '--config', join(tempDir(), 'none.json')]);
    expect(bad.code).toBe(2);
    expect(bad.err).toMatch(/--config .*none\.json: cannot read it/);

    // the run's learning curves, its export and the presets
    const plots = join(tempDir(), 'plots');
    const p = await run(['plot', '--run', dir, '--compare', dir, '--out', plots]);
    expect(p.code).toBe(0);
    expect(readFileSync(join(plots, 'error.svg'), 'utf8')).toMatch(/run test/);
    const out = join(tempDir(), 'export');
    const e = await run(['export', '--run', dir, '--out', out]);
    expect(e.code).toBe(0);
    const manifest = JSON.parse(readFileSync(join(out, 'model.json'), 'utf8')).weightsManifest;
    expect(manifest[0].paths).toEqual(['group1-shard1of1.bin']);
    expect(manifest[0].weights.map((w: { name: string }) => w.name)).toContain('classifier.w');
  });

  it('records --dataset idx with its folder, so eval scores the run on its own data; a stray label is refused', async () => {
    const data = tempDir();
    const images = (n: number) => Uint8Array.from({ length: n * 64 }, (_, i) => (i * 37) % 256);
    const labels = (n: number) => Uint8Array.from({ length: n }, (_, i) => i % 3);
    writeFileSync(join(data, IDX_FILES.trainImages), encodeIdx([48, 8, 8], images(48)));
    writeFileSync(join(data, IDX_FILES.trainLabels), encodeIdx([48], labels(48)));
    writeFileSync(join(data, IDX_FILES.testImages), encodeIdx([12, 8, 8], images(12)));
    writeFileSync(join(data, IDX_FILES.testLabels), encodeIdx([12], labels(12)));
    const dir = join(tempDir(), 'run');
    const size = ['--model', 'S/1/1', '--channels', '8', '--patches', '2', '--batch-size', '16'];
    const idx = [
      'train',
      '--dataset',
      'idx',
      '--data-dir',
      data,
      ...size,
      '--epochs',
      '1',
      '--backend',
      'cpu',
    ];
    const r = await run([...idx, '--no-progress', '--run-dir', dir]);
    expect(r.code).toBe(0);
    const saved = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'));
    expect(saved.data).toEqual({ loader: 'idx', dir: data });
    expect(saved.model.numClasses).toBe(3);
    const e = await run(['eval', '--run', dir, '--backend', 'cpu', '--json']);
    expect(e.code).toBe(0);
    expect(JSON.parse(e.out.trim().split('\n').at(-1) as string)).toMatchObject({ dataset: 'idx', epoch: 1 });
    // one label of 200: refused, instead of a 201-class model
    const stray = labels(48);
    stray[5] = 200;
    writeFileSync(join(data, IDX_FILES.trainLabels), encodeIdx([48], stray));
    const bad = await run([...idx, '--run-dir', join(tempDir(), 'x')]);
    expect(bad.code).toBe(1);
    expect(bad.err).toMatch(/largest label is 200 \(example 5\), which would make a 201-class model/);
  });

  it('prints its version and the presets', async () => {
    const v = await run(['--version']);
    expect(v.code).toBe(0);
    const version = JSON.parse(readFileSync(join(__dirname, '..', 'package.json'), 'utf8')).version;
    const printed: string[] = [];
    const spy = vi.spyOn(process.stdout, 'write').mockImplementation((s) => {
      printed.push(String(s));
      return true;
    });
    await main(['--version']);
    spy.mockRestore();
    expect(printed.join('').trim()).toBe(version);
    const presets = await run(['presets']);
    expect(presets.out).toMatch(/mnist-m116: MNIST, LocalMixer M\/1\/16: paper Tables 2-3/);
    expect(presets.out).toMatch(/cifar10-l864-contrastive: .*\n .*batch 2048, sgd lr 4/);
  });

  it('SIGTERM ends the step, writes a checkpoint and exits 143; --resume continues', async () => {
    const dir = join(tempDir(), 'run');
    const bin = join(__dirname, '..', 'dist', 'bin.js');
    // a tiny model, so the in-process resume is quick; 1000 steps (about a second on a fast machine),
    // so the signal always lands mid-epoch however late the test's process reads the child's stderr
    const size = ['--model', 'S/1/1', '--channels', '8', '--blocks', '1', '--batch-size', '4'];
    const limits = ['--epochs', '1', '--limit-train', '4000', '--limit-test', '100'];
    const args = ['train', ...size, ...limits, '--backend', 'cpu', '--no-progress', '--run-dir', dir];
    const child = spawn(process.execPath, [bin, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let err = '';
    child.stderr.on('data', (d) => {
      err += String(d);
      if (/^training /m.test(err) && !child.killed) child.kill('SIGTERM');
    });
    const code = await new Promise<number | null>((done) => child.on('exit', (c) => done(c)));
    expect(err).toMatch(/SIGTERM: finishing the step/);
    // the backend choice was explained: no tfjs "install the node backend" banner
    expect(err).not.toMatch(/looks like you are running TensorFlow\.js in Node\.js/);
    expect(err).toMatch(/interrupted by SIGTERM after step \d+; wrote .*checkpoint-0\.bin/);
    expect(code).toBe(143);
    expect(existsSync(join(dir, 'run.lock'))).toBe(false);
    const resumed = await run([...args, '--resume', '--json']);
    expect(resumed.code).toBe(0);
    expect(resumed.err).toMatch(/resuming .* after epoch 0 and \d+ steps of epoch 1/);
    // the resumed run's steps are in this process: minutes when the machine is busy
  }, 600_000);

  it('--parallel-blocks: SIGINT drains the pipeline, writes a checkpoint and exits 130; --resume continues', async () => {
    const dir = join(tempDir(), 'run');
    const bin = join(__dirname, '..', 'dist', 'bin.js');
    // as above: a tiny model in 2 stages and 1000 micro-batches, so the signal lands mid-epoch
    const size = ['--model', 'S/1/1', '--channels', '8', '--blocks', '2', '--batch-size', '4'];
    const limits = ['--epochs', '1', '--limit-train', '4000', '--limit-test', '100'];
    const args = [
      'train',
      '--algo',
      'lg-bp',
      ...size,
      ...limits,
      '--parallel-blocks',
      '2',
      '--backend',
      'cpu',
      '--no-progress',
      '--run-dir',
      dir,
    ];
    const child = spawn(process.execPath, [bin, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let err = '';
    child.stderr.on('data', (d) => {
      err += String(d);
      if (/^training /m.test(err) && !child.killed) child.kill('SIGINT');
    });
    const code = await new Promise<number | null>((done) => child.on('exit', (c) => done(c)));
    expect(err).toMatch(/blocks trained on 2 stages \(blocks 0 \| 1\) on worker threads/);
    expect(err).toMatch(/SIGINT: finishing the micro-batches in the pipeline/);
    expect(err).toMatch(
      /interrupted by SIGINT after step \d+; wrote .*checkpoint-0\.bin\. Continue with --resume/,
    );
    expect(code).toBe(130);
    expect(existsSync(join(dir, 'run.lock'))).toBe(false);
    const resumed = await run([...args, '--resume', '--json']);
    expect(resumed.code).toBe(0);
    expect(resumed.err).toMatch(/resuming .* after epoch 0 and \d+ steps of epoch 1/);
    expect(JSON.parse(resumed.out.trim().split('\n').at(-1) ?? '')).toMatchObject({
      epochs: 1,
      stages: [
        { first: 0, count: 1 },
        { first: 1, count: 1 },
      ],
    });
  }, 600_000);
});
