import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import type { Dataset, Split } from '@fwdgrad/datasets';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readMetrics } from './checkpoint.js';
import { type EpochMetrics, train } from './loop.js';
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

beforeAll(async () => {
  await tf.setBackend('cpu');
});

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
});
