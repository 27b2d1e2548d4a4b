import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import type { Dataset } from '@fwdgrad/datasets';
import { loadDataset } from '@fwdgrad/datasets/node';
import { afterAll, describe, expect, it } from 'vitest';
import { loadLatestCheckpoint, readMetrics } from '../checkpoint.js';
import { DivergenceError } from '../guard.js';
import { STEPS_FILE, train } from '../loop.js';
import { resolveExperiment } from '../presets.js';
import { trainPipelined } from './train.js';

// The stages run on worker threads with the backend of this suite's pass: tfjs's kernels, or
// @fwdgrad/native's with FWDGRAD_TEST_BACKEND=native (so that one stage can equal the sequential run).
const backend =
  (process.env.FWDGRAD_TEST_BACKEND ?? (process.env.FWDGRAD_NATIVE_KERNELS === '1' ? 'native' : 'cpu')) ===
  'native'
    ? 'native'
    : 'cpu';
const dirs: string[] = [];
const runDir = () => {
  const d = mkdtempSync(join(tmpdir(), 'fwdgrad-pipeline-'));
  dirs.push(d);
  return d;
};
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

let mnist: Dataset | undefined;
const dataset = () => {
  mnist ??= loadDataset('mnist');
  return mnist;
};

/** The parameters of a run's last checkpoint, as plain arrays. */
function finalParams(dir: string): Record<string, number[]> {
  const ckpt = loadLatestCheckpoint(dir);
  if (ckpt === null) throw new Error(`no checkpoint in ${dir}`);
  const out: Record<string, number[]> = {};
  for (const [name, t] of Object.entries(ckpt.params)) out[name] = Array.from(t.dataSync());
  tf.dispose([...Object.values(ckpt.params), ...Object.values(ckpt.optimizer)]);
  return out;
}

// A 3-block LocalMixer on whole MNIST images (one patch), small enough for a few steps per test.
const small = (algorithm: string) => ({
  experiment: resolveExperiment('mnist-m116', { epochs: 1, batchSize: 32 }),
  algorithm: algorithm as 'lg-fg-a',
  modelOverrides: { blocks: 3, patchesPerSide: 1, channels: 32, groups: 4 },
  dataset: dataset(),
  seed: 3,
  limitTrain: 128,
  limitTest: 100,
  backend,
  progressStream: null,
  log: () => {},
});

describe('trainPipelined (stages on worker threads)', () => {
  it('same seed and stage count, same numbers; one stage is the sequential run', async () => {
    const a = runDir();
    const b = runDir();
    const one = runDir();
    const seq = runDir();
    const [ra, rb] = [
      await trainPipelined({ ...small('lg-fg-a'), runDir: a, parallelBlocks: 3 }),
      await trainPipelined({ ...small('lg-fg-a'), runDir: b, parallelBlocks: 3 }),
    ];
    expect(ra.stages.map((s) => s.count)).toEqual([1, 1, 1]);
    expect(ra.test_error).toBe(rb.test_error);
    const strip = (rows: Record<string, unknown>[]) =>
      rows.map(({ seconds, examples_per_second, stage_seconds, live_tensors, ...rest }) => rest);
    expect(strip(readMetrics(b))).toEqual(strip(readMetrics(a)));
    expect(finalParams(b)).toEqual(finalParams(a));

    await trainPipelined({ ...small('lg-fg-a'), runDir: one, parallelBlocks: 1 });
    await train({ ...small('lg-fg-a'), runDir: seq });
    const p1 = finalParams(one);
    const ps = finalParams(seq);
    expect(Object.keys(p1).sort()).toEqual(Object.keys(ps).sort());
    for (const name of Object.keys(ps)) expect(p1[name]).toEqual(ps[name]);
    // three stages are not the sequential run: stages 1 and 2 draw their own noise
    expect(finalParams(a)['backbone.5.w']).not.toEqual(ps['backbone.5.w']);
  }, 600_000);

  it('refuses what it cannot do, naming the fix', async () => {
    await expect(trainPipelined({ ...small('bp'), runDir: runDir(), parallelBlocks: 2 })).rejects.toThrow(
      /'bp' is not one/,
    );
    await expect(trainPipelined({ ...small('lg-bp'), runDir: runDir(), parallelBlocks: 4 })).rejects.toThrow(
      /choose 1 … 3 stages/,
    );
  });

  it("a stage's non-finite loss is the trainer's divergence error, naming the stage", async () => {
    const opts = {
      ...small('lg-bp'),
      experiment: resolveExperiment('mnist-m116', { epochs: 1, batchSize: 32, lr: 1e38 }),
    };
    const err = await trainPipelined({ ...opts, runDir: runDir(), parallelBlocks: 2 }).catch(
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(DivergenceError);
    expect((err as Error).message).toMatch(
      /^Training diverged: (local )?loss of stage [12]\/2 is (NaN|-?Infinity) at step \d+ \(epoch 1\)\. Stopped\. No checkpoint was written yet: start again with a lower learning rate, e\.g\. --lr [\d.e+]+\.$/,
    );
  });

  it('stops on its signal with the pipe drained; resumed, it gives the numbers of an uninterrupted run', async () => {
    // 2 epochs of 8 micro-batches on 3 stages; the interrupted run stops mid-epoch (after step 5),
    // is resumed and stops again at the epoch boundary, then resumed to the end
    const opts = {
      ...small('lg-fg-a'),
      experiment: resolveExperiment('mnist-m116', { epochs: 2, batchSize: 16 }),
      parallelBlocks: 3,
      logEvery: 3,
    };
    /** A signal that reads as aborted (by SIGINT) from its `n`th look on: the trainer looks once per step and at each epoch's end. */
    const abortOnLook = (n: number) => {
      let looks = 0;
      return {
        get aborted() {
          return ++looks >= n;
        },
        reason: 'SIGINT',
      } as unknown as AbortSignal;
    };
    const whole = runDir();
    await trainPipelined({ ...opts, runDir: whole });
    const cut = runDir();
    await expect(trainPipelined({ ...opts, runDir: cut, signal: abortOnLook(5) })).rejects.toThrow(
      /training interrupted by SIGINT after step 5; wrote .*checkpoint-0\.bin\. Continue with --resume/,
    );
    expect(existsSync(join(cut, 'run.lock'))).toBe(false);
    expect(readMetrics(cut)).toEqual([]);
    // another split of the blocks is another run (the stages draw their own noise)
    await expect(trainPipelined({ ...opts, runDir: cut, resume: true, parallelBlocks: 2 })).rejects.toThrow(
      /trained on 3 stages \(blocks 0 \| 1 \| 2\), not on 2 stages .*resume it with --parallel-blocks 3/,
    );
    await expect(train({ ...opts, runDir: cut, resume: true })).rejects.toThrow(
      /resume it with --parallel-blocks 3/,
    );
    // steps 6–8 (three looks), then the look at the epoch's end
    const lines: string[] = [];
    await expect(
      trainPipelined({
        ...opts,
        runDir: cut,
        resume: true,
        signal: abortOnLook(4),
        log: (l) => lines.push(l),
      }),
    ).rejects.toThrow(/after step 8; wrote .*checkpoint-1\.bin/);
    expect(lines.join('\n')).toMatch(/resuming .* after epoch 0 and 5 steps of epoch 1 \(step 5\)/);
    const resumed = await trainPipelined({ ...opts, runDir: cut, resume: true });
    const uninterrupted = loadLatestCheckpoint(whole);
    expect(resumed.epochs).toBe(2);
    const strip = (rows: Record<string, unknown>[]) =>
      rows.map(({ seconds, examples_per_second, stage_seconds, live_tensors, ...rest }) => rest);
    expect(strip(readMetrics(cut))).toEqual(strip(readMetrics(whole)));
    expect(readMetrics(cut)).toHaveLength(2);
    // per-step rows (every 3 steps) and learning curves, as the sequential trainer writes them
    expect(readMetrics(cut, STEPS_FILE)).toEqual(readMetrics(whole, STEPS_FILE));
    expect(readMetrics<{ step: number }>(cut, STEPS_FILE).map((r) => r.step)).toEqual([3, 6, 9, 12, 15]);
    expect(existsSync(join(cut, 'loss.svg'))).toBe(true);
    expect(finalParams(cut)).toEqual(finalParams(whole));
    const ckpt = loadLatestCheckpoint(cut);
    expect(ckpt?.step).toBe(16);
    const names = (c: typeof ckpt) => Object.keys(c?.optimizer ?? {}).sort();
    expect(names(ckpt)).toEqual(names(uninterrupted));
    for (const name of names(ckpt)) {
      expect(Array.from(ckpt?.optimizer[name].dataSync() ?? [])).toEqual(
        Array.from(uninterrupted?.optimizer[name].dataSync() ?? []),
      );
    }
    for (const c of [ckpt, uninterrupted])
      tf.dispose([...Object.values(c?.params ?? {}), ...Object.values(c?.optimizer ?? {})]);
  }, 600_000);
});
