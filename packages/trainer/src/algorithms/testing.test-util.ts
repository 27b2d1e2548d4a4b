import * as tf from '@tensorflow/tfjs';
import { patchify, resolveConfig } from '@fwdgrad/localmixer';

import { createRandom } from '@fwdgrad/random';
import { createModel, type Model } from '../model.js';
import { createOptimizer } from '../optim.js';
import { createAlgorithm } from './registry.js';
import type { StepBatch } from './types.js';

/** A tiny LocalMixer: 8×8×1 images, 2×2 patches, 2 blocks, 8 channels, 2 groups, 3 classes. */
export function tinyConfig(overrides: Record<string, unknown> = {}) {
  return resolveConfig({
    imageShape: [8, 8, 1],
    numClasses: 3,
    blocks: 2,
    patchesPerSide: 2,
    channels: 8,
    hidden: 8,
    groups: 2,
    ...overrides,
  });
}

export function tinyModel(seed = 1, overrides: Record<string, unknown> = {}): Model {
  return createModel(tinyConfig(overrides), seed);
}

/** A synthetic 3-class problem: class c lights up a class-specific quadrant pattern, plus noise. */
export function syntheticBatch(model: Model, n = 48, seed = 7): StepBatch {
  return tf.tidy(() => {
    const labels = Array.from({ length: n }, (_, i) => i % 3);
    const noise = tf.randomNormal([n, 8, 8, 1], 0, 0.3, 'float32', seed);
    const patterns = tf.stack(
      [0, 1, 2].map((c) => {
        const v = new Float32Array(64);
        for (let i = 0; i < 64; i++) {
          const r = Math.floor(i / 8);
          const col = i % 8;
          v[i] = c === 0 ? (r < 4 ? 1 : 0) : c === 1 ? (col < 4 ? 1 : 0) : (r + col) % 2;
        }
        return tf.tensor3d(v, [8, 8, 1]);
      }),
    );
    const images = tf.add(tf.gather(patterns, tf.tensor1d(labels, 'int32')), noise);
    const x = tf.keep(patchify(images, model.config));
    const y = tf.keep(tf.oneHot(tf.tensor1d(labels, 'int32'), 3).toFloat());
    return { x, labels: y, size: n } as unknown as tf.Tensor;
  }) as unknown as StepBatch;
}

/** Two noisy views of the synthetic images, stacked [2B, P, D] (view 1 first), for contrastive rules. */
export function syntheticViews(model: Model, n = 16, seed = 7): StepBatch {
  const base = syntheticBatch(model, n, seed);
  const out = tf.tidy(() => {
    const jitter = (s: number) => tf.add(base.x, tf.randomNormal(base.x.shape, 0, 0.2, 'float32', s));
    return {
      x: tf.keep(tf.concat([jitter(seed + 1), jitter(seed + 2)], 0)),
      labels: tf.keep(tf.clone(base.labels)),
      size: n,
    };
  }) as unknown as StepBatch;
  disposeBatch(base);
  return out;
}

export function disposeBatch(b: StepBatch): void {
  tf.dispose([b.x, b.labels]);
}

/**
 * Trains a tiny model with one rule for `steps` SGD-momentum steps on the synthetic batch.
 * Returns per-step losses — `total` (final + local) and `primary` (local if any, else final) —
 * and the tensors left over once everything is disposed.
 */
export function trainTiny(id: string, steps: number, lr: number, options = {}) {
  const model = tinyModel(3);
  const batch = syntheticBatch(model);
  const algo = createAlgorithm(id, model, options, createRandom(5));
  const opt = createOptimizer('sgd', { momentum: 0.9, lastLayerLr: 1 });
  const total: number[] = [];
  const primary: number[] = [];
  const before = tf.memory().numTensors - (model.entries.length + 2);
  for (let s = 0; s < steps; s++) {
    const r = algo.step(model, batch, createRandom(100 + s));
    total.push(r.loss + (r.localLoss ?? 0));
    primary.push(r.localLoss ?? r.loss);
    opt.apply(
      model.entries.filter((e) => r.grads.has(e.name)),
      r.grads,
      lr,
    );
    tf.dispose([...r.grads.values()]);
  }
  algo.dispose();
  opt.dispose();
  disposeBatch(batch);
  model.dispose();
  return { total, primary, leaked: tf.memory().numTensors - before };
}
