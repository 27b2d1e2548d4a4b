import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import type { Dataset, Split } from '@fwdgrad/datasets';
import { afterAll, describe, expect, it } from 'vitest';
import { loadLatestCheckpoint, readMetrics } from './checkpoint.js';
import { exportWeights } from './export.js';
import {
  type EpochMetrics,
  type StepMetrics,
  TrainingInterruptedError,
  TrainSettingsError,
  train,
} from './loop.js';
import { resolveExperiment } from './presets.js';

const dirs: string[] = [];
function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'fwdgrad-loop-'));
  dirs.push(d);
  return d;
}

/** A tiny 3-class image set: class c brightens a class-specific half of an 8×8 image. */
function split(count: number, seed: number): Split {
  let s = seed;
  const next = () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 4294967296;
  };
  const images = new Uint8Array(count * 64);
  const labels = new Uint8Array(count);
  for (let i = 0; i < count; i++) {
    const c = i % 3;
    labels[i] = c;
    for (let p = 0; p < 64; p++) {
      const r = Math.floor(p / 8);
      const col = p % 8;
      const on = c === 0 ? r < 4 : c === 1 ? col < 4 : (r + col) % 2 === 0;
      images[i * 64 + p] = Math.min(255, Math.floor((on ? 150 : 40) + next() * 100));
    }
  }
  return { images, labels, count, shape: [8, 8, 1] };
}

const dataset: Dataset = {
  name: 'synthetic',
  train: split(96, 1),
  test: split(48, 2),
  numClasses: 3,
  shape: [8, 8, 1],
  mean: [0.5],
  std: [0.25],
};

const tiny = { blocks: 2, patchesPerSide: 2, channels: 8, hidden: 8, groups: 2 };

function options(runDir: string, algorithm: 'lg-fg-a' | 'lg-bp' = 'lg-fg-a', epochs = 3, lr = 0.01) {
  return {
    experiment: resolveExperiment('mnist-m116', { epochs, batchSize: 16, lr }),
    algorithm,
    modelOverrides: tiny,
    dataset,
    seed: 4,
    runDir,
    progressStream: null,
    log: () => {},
  };
}

afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

describe('train', () => {
  it('writes config, one metrics row per epoch and the newest 3 checkpoints; live tensors stay constant', async () => {
    const dir = tempDir();
    const summary = await train(options(dir, 'lg-fg-a', 4));
    expect(summary.epochs).toBe(4);
    expect(summary.test_error).toBeGreaterThanOrEqual(0);
    const rows = readMetrics<EpochMetrics>(dir);
    expect(rows.map((r) => r.epoch)).toEqual([1, 2, 3, 4]);
    expect(new Set(rows.map((r) => r.live_tensors)).size).toBe(1);
    for (const r of rows) {
      expect(r.local_loss).not.toBeNull();
      expect(r.examples_per_second).toBeGreaterThan(0);
      // the forward-gradient update against the LG-BP gradient, per backbone weight
      const angles = Object.values(r.alignment_deg ?? {});
      expect(angles).toHaveLength(5);
      for (const a of angles) expect(a > 0 && a < 180).toBe(true);
    }
    expect(
      readdirSync(dir)
        .filter((f) => f.startsWith('checkpoint-'))
        .sort(),
    ).toEqual(['checkpoint-2.bin', 'checkpoint-3.bin', 'checkpoint-4.bin']);
    expect(JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')).algorithm).toBe('lg-fg-a');
  });

  it('resume continues exactly: same numbers as an uninterrupted run', async () => {
    const straight = tempDir();
    await train(options(straight, 'lg-fg-a', 3));
    // a run interrupted during epoch 3: its last checkpoint is epoch 2's
    const resumed = tempDir();
    await train(options(resumed, 'lg-fg-a', 3));
    rmSync(join(resumed, 'checkpoint-3.bin'));
    const rows = readMetrics<EpochMetrics>(resumed).filter((r) => r.epoch <= 2);
    writeFileSync(join(resumed, 'metrics.jsonl'), `${rows.map((r) => JSON.stringify(r)).join('\n')}\n`);
    const summary = await train({ ...options(resumed, 'lg-fg-a', 3), resume: true });
    const a = readMetrics<EpochMetrics>(straight);
    const b = readMetrics<EpochMetrics>(resumed);
    expect(b.map((r) => r.epoch)).toEqual([1, 2, 3]);
    for (const key of ['loss', 'local_loss', 'test_error', 'train_error'] as const) {
      expect(b.map((r) => r[key])).toEqual(a.map((r) => r[key]));
    }
    expect(summary.test_error).toBe(a[2].test_error);
  });

  it('refuses to resume with different settings and to overwrite an existing run', async () => {
    const dir = tempDir();
    await train(options(dir, 'lg-bp', 1));
    expect(readMetrics<EpochMetrics>(dir)[0].alignment_deg).toBeNull(); // exact rule
    await expect(train(options(dir, 'lg-bp', 1))).rejects.toThrow(/already holds a run; pass --resume/);
    await expect(train({ ...options(dir, 'lg-fg-a', 1), resume: true })).rejects.toThrow(
      /cannot resume .*algorithm: "lg-bp" vs "lg-fg-a"/,
    );
  });

  it('stops on divergence naming the step, keeping the last good checkpoint', async () => {
    const dir = tempDir();
    // lr 1e38: at 1e30 the fused layer-norm gradient (exactly 0 where r = 0 after overflow) kept the loss finite
    // (~1e29) under the native kernels; at 1e38 the weights overflow to Inf in the first steps
    await expect(train(options(dir, 'lg-bp', 3, 1e38))).rejects.toThrow(
      /diverged: .* at step \d+ \(epoch \d+\)/,
    );
  });

  it('reports a corrupt checkpoint instead of resuming from it', async () => {
    const dir = tempDir();
    await train(options(dir, 'lg-bp', 1));
    const file = join(dir, 'checkpoint-1.bin');
    const bytes = readFileSync(file);
    bytes[bytes.length - 5] ^= 0xff;
    writeFileSync(file, bytes);
    await expect(train({ ...options(dir, 'lg-bp', 2), resume: true })).rejects.toThrow(/checkpoint-1\.bin/);
  });

  it('names an unwritable run folder', async () => {
    const file = join(tempDir(), 'not-a-folder');
    writeFileSync(file, 'x');
    await expect(train(options(join(file, 'run')))).rejects.toThrow(/not-a-folder/);
  });

  it('trains the contrastive objective with the online linear readout', async () => {
    const dir = tempDir();
    const opts = options(dir, 'lg-fg-a', 1);
    const summary = await train({
      ...opts,
      experiment: resolveExperiment('mnist-m116', { epochs: 1, batchSize: 16, objective: 'contrastive' }),
      modelOverrides: { ...tiny, projectionDim: 8 },
    });
    expect(summary.objective).toBe('contrastive');
    const [row] = readMetrics<EpochMetrics>(dir);
    expect(row.readout_loss).toBeGreaterThan(0);
    expect(row.test_error).toBeLessThanOrEqual(1);
  });

  it('resumes an interrupted epoch exactly: SIGINT ends the step, writes a checkpoint carrying the partial epoch', async () => {
    const straight = tempDir();
    await train(options(straight, 'lg-fg-a', 3));
    const dir = tempDir();
    // stop after the 7th step (epoch 2, step 1 of 6; the signal is read after each step and after each
    // epoch's checkpoint), as the CLI's SIGINT handler does
    let reads = 0;
    const signal = {
      get aborted() {
        return ++reads >= 8;
      },
      reason: 'SIGINT',
    } as AbortSignal;
    const stopped = await train({ ...options(dir, 'lg-fg-a', 3), signal }).catch((e) => e);
    expect(stopped).toBeInstanceOf(TrainingInterruptedError);
    expect(stopped.reason).toBe('SIGINT');
    expect(stopped.step).toBe(7);
    expect(stopped.message).toMatch(
      /interrupted by SIGINT after step 7; wrote .*checkpoint-1\.bin\. Continue with --resume/,
    );
    expect(readMetrics<EpochMetrics>(dir).map((r) => r.epoch)).toEqual([1]);
    expect(existsSync(join(dir, 'run.lock'))).toBe(false);
    await train({ ...options(dir, 'lg-fg-a', 3), resume: true });
    const a = readMetrics<EpochMetrics>(straight);
    const b = readMetrics<EpochMetrics>(dir);
    for (const key of [
      'epoch',
      'step',
      'loss',
      'local_loss',
      'train_batch_accuracy',
      'test_error',
      'train_error',
    ] as const) {
      expect(b.map((r) => r[key])).toEqual(a.map((r) => r[key]));
    }
  });

  it('locks the run folder: a second run on it is refused naming the holder; a dead holder is taken over', async () => {
    const dir = tempDir();
    const first = train(options(dir, 'lg-bp', 2));
    await expect(train(options(dir, 'lg-bp', 1))).rejects.toThrow(
      new RegExp(`in use by process ${process.pid} on ${hostname()} since .*run\\.lock`),
    );
    await first;
    expect(readMetrics<EpochMetrics>(dir).map((r) => r.epoch)).toEqual([1, 2]);
    // a lock left by a crashed process (its pid is gone) is recovered
    const stale = tempDir();
    const dead = spawnSync(process.execPath, ['-e', '0']).pid;
    writeFileSync(join(stale, 'run.lock'), JSON.stringify({ pid: dead, host: hostname(), since: 'then' }));
    await train(options(stale, 'lg-bp', 1));
    expect(existsSync(join(stale, 'run.lock'))).toBe(false);
    // a holder on another machine cannot be checked: refused, with how to clear it
    const remote = tempDir();
    writeFileSync(join(remote, 'run.lock'), JSON.stringify({ pid: 1, host: 'elsewhere', since: 'then' }));
    await expect(train(options(remote, 'lg-bp', 1))).rejects.toThrow(
      /process 1 on elsewhere .*delete .*run\.lock/,
    );
  });

  it('resumes against the settings in the checkpoint, even without config.json; nothing to resume is an error', async () => {
    const dir = tempDir();
    await train(options(dir, 'lg-fg-a', 1));
    rmSync(join(dir, 'config.json'));
    await expect(train({ ...options(dir, 'lg-bp', 2), resume: true })).rejects.toThrow(
      /cannot resume .*algorithm: "lg-fg-a" vs "lg-bp"/,
    );
    const other = { ...options(dir, 'lg-fg-a', 2), resume: true, data: { loader: 'idx', dir: '/data/x' } };
    await expect(train(other)).rejects.toThrow(/cannot resume .*data: /);
    expect(readMetrics<EpochMetrics>(dir)).toHaveLength(1);
    // a folder without checkpoints, or none at all
    const empty = tempDir();
    await expect(train({ ...options(empty), resume: true })).rejects.toThrow(
      /nothing to resume in .*no checkpoint/,
    );
    await expect(train({ ...options(join(empty, 'nope')), resume: true })).rejects.toThrow(
      /nothing to resume: the run folder .*nope does not exist/,
    );
    expect(existsSync(join(empty, 'nope'))).toBe(false);
  });

  it('accepts a new learning rate on resume only when asked, and records it in the history', async () => {
    const dir = tempDir();
    await train(options(dir, 'lg-bp', 1, 0.01));
    await expect(train({ ...options(dir, 'lg-bp', 2, 0.002), resume: true })).rejects.toThrow(
      /experiment lr: 0.01 vs 0.002 \(pass --lr 0.01/,
    );
    await train({ ...options(dir, 'lg-bp', 2, 0.002), resume: true, changeLr: true });
    const config = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'));
    expect(config.experiment.lr).toBe(0.002);
    expect(config.history).toMatchObject([{ step: 6, epoch: 1, setting: 'lr', from: 0.01, to: 0.002 }]);
    expect(readMetrics<EpochMetrics>(dir).map((r) => r.epoch)).toEqual([1, 2]);
  });

  it('checks the settings against the data before writing anything', async () => {
    const dir = join(tempDir(), 'run');
    await expect(train({ ...options(dir), limitTrain: 97 })).rejects.toThrow(TrainSettingsError);
    await expect(train({ ...options(dir), limitTrain: 97 })).rejects.toThrow(
      /--limit-train 97 is more than the 96 training examples of synthetic; use at most 96/,
    );
    await expect(train({ ...options(dir), limitTest: 49 })).rejects.toThrow(
      /--limit-test 49 .* 48 test examples/,
    );
    await expect(train({ ...options(dir), seed: 1e30 })).rejects.toThrow(/--seed 1e\+30 is not an integer/);
    const empty = {
      ...dataset,
      test: { ...dataset.test, count: 0, images: new Uint8Array(0), labels: new Uint8Array(0) },
    };
    await expect(train({ ...options(dir), dataset: empty })).rejects.toThrow(
      /96 training and 0 test examples/,
    );
    expect(existsSync(dir)).toBe(false);
  });

  it('removes the temporary files of a killed write; logs steps every N and draws the learning curves', async () => {
    const dir = tempDir();
    writeFileSync(join(dir, '.checkpoint-3.bin.tmp-99999-abcd1234'), 'partial');
    await train({ ...options(dir, 'lg-fg-a', 2), logEvery: 4 });
    expect(readdirSync(dir).filter((f) => f.includes('.tmp-'))).toEqual([]);
    const steps = readMetrics<StepMetrics>(dir, 'steps.jsonl');
    expect(steps.map((r) => [r.step, r.epoch])).toEqual([
      [4, 1],
      [8, 2],
      [12, 2],
    ]);
    for (const r of steps) expect(r.loss).toBeGreaterThan(0);
    const error = readFileSync(join(dir, 'error.svg'), 'utf8');
    expect(error).toMatch(/^<svg/);
    expect(error).toMatch(/test/);
    expect(readFileSync(join(dir, 'loss.svg'), 'utf8')).toMatch(/<polyline|<path/);
  });

  it('numbers the diverging epoch from 1 and offers --resume --lr', async () => {
    const dir = tempDir();
    await expect(train(options(dir, 'lg-bp', 3, 1e38))).rejects.toThrow(
      /diverged: .* \(epoch 1\)\. Stopped\. No checkpoint was written yet: start again with a lower learning rate, e\.g\. --lr 1e\+37/,
    );
  });

  it('exports the newest checkpoint in tfjs weights format, loadable with tf.io', async () => {
    const dir = tempDir();
    await train(options(dir, 'lg-fg-a', 1));
    const out = join(tempDir(), 'export');
    const written = await exportWeights(dir, out);
    expect(written.shards.map((f) => f.slice(out.length + 1))).toEqual(['group1-shard1of1.bin']);
    // tf.io's own loader, reading files instead of HTTP
    const fetchFunc = async (url: string | URL | Request) => new Response(readFileSync(String(url)));
    const handler = tf.io.http(join(out, 'model.json'), { fetchFunc });
    if (handler.load === undefined) throw new Error('no load');
    const artifacts = await handler.load();
    const loaded = tf.io.decodeWeights(artifacts.weightData as ArrayBuffer, artifacts.weightSpecs ?? []);
    const ckpt = loadLatestCheckpoint(dir);
    if (ckpt === null) throw new Error('no checkpoint');
    expect(Object.keys(loaded).sort()).toEqual(Object.keys(ckpt.params).sort());
    for (const [name, t] of Object.entries(ckpt.params)) {
      expect(loaded[name].shape).toEqual(t.shape);
      expect(Array.from(loaded[name].dataSync())).toEqual(Array.from(t.dataSync()));
    }
    const meta = JSON.parse(readFileSync(written.config, 'utf8'));
    expect(meta).toMatchObject({ algorithm: 'lg-fg-a', epoch: 1, localmixer: { blocks: 2, channels: 8 } });
    expect(artifacts.userDefinedMetadata).toMatchObject({ algorithm: 'lg-fg-a' });
    tf.dispose([...Object.values(loaded), ...Object.values(ckpt.params), ...Object.values(ckpt.optimizer)]);
    await expect(exportWeights(join(dir, 'nope'), out)).rejects.toThrow(/does not exist/);
  });
});
